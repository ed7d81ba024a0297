"""`--max-isa avx2`: every library of the benchmark on its AVX2 code paths, checked in a child."""

import json
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import isa_cap, report, throughput
from jax_models.errors import UserError

REPO = Path(__file__).resolve().parents[1]
CAN_CAP = (
    sys.platform == "linux"
    and platform.machine() == "x86_64"
    and set(isa_cap.REQUIRED_EXTENSIONS) <= set(throughput.cpu_vector_extensions())
)
needs_avx2 = pytest.mark.skipif(not CAN_CAP, reason="needs Linux on an x86-64 CPU with AVX2")

# A child that caps YNNPACK (or first runs a convolution, then caps) and reports what it saw.
CHILD = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from benchmarks import isa_cap
    from jax_models.errors import UserError

    ynnpack = isa_cap.YnnpackFlags()
    before = ynnpack.read()

    def conv():
        # 32 features, NHWC/HWIO, stride 1: XLA sends it to YNNPACK.
        x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 32)), jnp.float32)
        w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 32, 32)), jnp.float32)
        out = jax.lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return np.asarray(out).tolist()

    if sys.argv[1] == "late":
        conv()
    seen = ynnpack.read()
    try:
        ynnpack.cap()
        error = None
    except UserError as e:
        error = str(e)
    out = conv()
    print(json.dumps(dict(before=before, seen=seen, error=error, out=out, after=ynnpack.read())))
    """
)


def child(order: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, order],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=isa_cap.capped_environ({"PATH": "", "JAX_PLATFORMS": "cpu"}),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_environment_switches_every_library_once():
    env = isa_cap.capped_environ({"XLA_FLAGS": "--xla_cpu_enable_fast_math=false", "HOME": "/h"})
    assert not isa_cap.environ_capped({"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"})
    assert isa_cap.environ_capped(env)
    assert env["HOME"] == "/h" and env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert env["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false --xla_cpu_max_isa=AVX2"
    assert isa_cap.capped_environ(env) == env


def test_a_cpu_without_avx2_is_refused_in_one_line():
    with pytest.raises(UserError, match="missing avx2, fma.*--max-isa native"):
        isa_cap.check_cpu(["avx", "sse4_2"])


def test_a_file_that_is_not_elf_is_refused(tmp_path):
    (tmp_path / "lib.so").write_bytes(b"MZ not an ELF file")
    with pytest.raises(UserError, match="not a 64-bit little-endian ELF"):
        isa_cap.elf_symbols(tmp_path / "lib.so", [isa_cap.YNNPACK_FLAGS_SYMBOL])


@needs_avx2
def test_ynnpack_runs_with_the_avx2_flags_and_the_same_values():
    capped = child("first")
    assert capped["before"] is None and capped["error"] is None
    assert capped["after"] == isa_cap.YNNPACK_AVX2_FLAGS
    # Capping after YNNPACK ran is refused where its kernels were chosen for a wider set (on
    # an AVX2-only CPU its own set is the AVX2 one: nothing to refuse).
    late = child("late")
    assert late["seen"] is not None and late["after"] == late["seen"]  # the CPU's own set
    if late["seen"] == isa_cap.YNNPACK_AVX2_FLAGS:
        assert late["error"] is None
    else:
        assert "already chose its kernels" in late["error"]
    np.testing.assert_allclose(late["out"], capped["out"], rtol=1e-5, atol=1e-4)


@needs_avx2
def test_throughput_cli_records_the_capped_code_paths(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "benchmarks.throughput", "--models", "lenet5"]
    command += ["--dataset", "mnist", "--batch-size", "8", "--json", str(out), "--seconds", "0"]
    command += ["--rounds", "1", "--min-steps", "1", "--peak-size", "128", "--max-isa", "avx2"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    machine = results["machine"]
    assert machine["ynnpack_arch_flags"] == hex(isa_cap.YNNPACK_AVX2_FLAGS)
    assert machine["torch_cpu_capability"] == "AVX2"
    assert machine["isa_switches"] == isa_cap.LIBRARY_ENV
    assert isa_cap.XLA_FLAG in machine["xla_flags"].split()
    assert results["command"].endswith("--max-isa avx2")
    assert results["models"][0]["jax_images_per_s"] > 0
    assert "code paths capped" in report.machine_lines(machine)[0]


def results_file(path: Path, machine: dict, dataset: str) -> str:
    """A throughput JSON with no rows: the report's machine lines and sections only."""
    results = {
        "machine": machine,
        "image_shape": [28, 28, 1],
        "batch_size": 8,
        "dataset": dataset,
        "command": "python -m benchmarks.throughput",
        "load_average_before": [0.5],
        "load_average_after": [0.6],
        "peak_gflops": 100.0,
        "models": [],
    }
    path.write_text(json.dumps(results))
    return str(path)


def test_report_writes_a_named_section_and_leaves_the_other(tmp_path):
    native = throughput.machine(torch.device("cpu"))
    capped = native | {"isa_switches": isa_cap.LIBRARY_ENV, "ynnpack_arch_flags": "0x7f"}
    assert "code paths capped" not in report.machine_lines(native)[0]
    runs = [
        results_file(tmp_path / "native.json", native, "mnist"),
        results_file(tmp_path / "capped_mnist.json", capped, "mnist"),
        results_file(tmp_path / "capped_cifar10.json", capped, "cifar10"),
    ]
    argv = ["--throughput", *runs, "--doc", str(tmp_path / "doc.md"), "--section", "avx2"]
    doc = tmp_path / "doc.md"
    doc.write_text("a\n<!-- measured:begin -->\nkept\n<!-- measured:end -->\nb\n")
    with pytest.raises(UserError, match="<!-- avx2:begin -->"):
        report.main(argv)
    doc.write_text(doc.read_text() + "<!-- avx2:begin -->\nold\n<!-- avx2:end -->\nc\n")
    report.main(argv)
    text = doc.read_text()
    assert "kept" in text and "old" not in text and text.endswith("<!-- avx2:end -->\nc\n")
    # One machine line per change of machine: the native run's, then the capped runs' one.
    machine_lines = [line for line in text.splitlines() if line.startswith("Machine:")]
    assert len(machine_lines) == 2 and "code paths capped" not in machine_lines[0]
    assert "code paths capped: `ATEN_CPU_CAPABILITY=avx2`" in machine_lines[1]
    assert "YNNPACK's CPU flags set to 0x7f" in machine_lines[1]


@needs_avx2
def test_step_variant_benchmarks_take_the_cap_too(tmp_path):
    out = tmp_path / "banded.json"
    command = [sys.executable, "-m", "benchmarks.banded_conv", "--models", "lenet5"]
    command += ["--dataset", "mnist", "--batch-size", "8", "--rounds", "1"]
    command += ["--round-seconds", "0", "--json", str(out), "--max-isa", "avx2"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    machine = json.loads(out.read_text())["machine"]
    assert machine["ynnpack_arch_flags"] == "0x7f" and machine["torch_cpu_capability"] == "AVX2"


@needs_avx2
def test_the_cap_refuses_to_restart_a_process_that_is_not_a_benchmark(tmp_path):
    # In-process (here: under pytest) there is no `python -m benchmarks.<name>` to start again.
    with pytest.raises(UserError, match="run it as `python -m benchmarks.<name>`"):
        throughput.main(
            ["--models", "lenet5", "--json", str(tmp_path / "x.json"), "--max-isa", "avx2"]
        )
    assert not (tmp_path / "x.json").exists()
