"""The throughput benchmark: PyTorch twins match the JAX models, and both CLIs write their JSON."""

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from flax import nnx

import jax_models
from benchmarks import (
    banded_conv,
    conv_routing,
    cpu_convolutions,
    epoch_time,
    jit_modes,
    report,
    stored_inputs,
    throughput,
    torch_models,
)
from tests.fake_data import write_idx_dataset
from trainers import xla_options

REPO = Path(__file__).resolve().parents[1]
SHAPES = {"cifar10": (32, 32, 3), "mnist": (28, 28, 1)}
ROW_KEYS = {
    "jax_images_per_s",
    "torch_images_per_s",
    "ratio",
    "compile_s",
    "achieved_gflops",
    "peak_gflops",
    "mfu",
    "peak_memory_mb",
    "torch_peak_memory_mb",
    "train_step_flops",
    "load_average",
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("name", torch_models.TORCH_MODELS)
def test_torch_twin_has_the_jax_parameter_count_and_logits(name, shape):
    # Shapes only: counting parameters needs no initialised weights.
    jax_model = nnx.eval_shape(lambda: jax_models.create(name, num_classes=10, input_shape=shape))
    torch_model = torch_models.create(name, 10, shape)
    assert torch_models.count_params(torch_model) == jax_models.count_params(jax_model)
    with torch.no_grad():
        logits = torch_model.eval()(torch.zeros(2, shape[2], shape[0], shape[1]))
    assert logits.shape == (2, 10)


def test_every_study_model_has_a_twin():
    study = {"lenet5", "alexnet", "googlenet", "vgg16", "resnet18", "xception", "senet18"}
    assert set(torch_models.TORCH_MODELS) == study
    assert study <= set(jax_models.MODELS)


def test_throughput_cli_writes_every_figure(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--models", "lenet5", "--dataset", "mnist", "--batch-size", "8", "--json", str(out)]
    argv += ["--seconds", "0", "--rounds", "2", "--min-steps", "1", "--peak-size", "128"]
    throughput.main(argv)
    results = json.loads(out.read_text())
    (row,) = results["models"]
    assert set(row) >= ROW_KEYS
    assert row["model"] == "lenet5" and row["params"] == 61706
    assert row["jax_images_per_s"] > 0 and row["torch_images_per_s"] > 0
    assert row["ratio"] == pytest.approx(row["jax_images_per_s"] / row["torch_images_per_s"])
    assert row["mfu"] == pytest.approx(row["achieved_gflops"] / row["peak_gflops"])
    assert len(row["ratio_per_round"]) == 2
    # Training a step costs more than the forward pass of its batch.
    assert row["train_step_flops"] > 8 * row["forward_flops_per_image"]
    assert results["machine"]["torch"] == torch.__version__
    assert results["image_shape"] == [28, 28, 1]
    assert "lenet5" in capsys.readouterr().out


def test_throughput_cli_times_the_bfloat16_step(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--models", "lenet5", "--dataset", "mnist", "--batch-size", "8", "--json", str(out)]
    argv += ["--seconds", "0", "--rounds", "1", "--min-steps", "1", "--peak-size", "128"]
    throughput.main([*argv, "--compute-dtype", "bfloat16"])
    results = json.loads(out.read_text())
    assert results["compute_dtype"] == "bfloat16"
    assert results["models"][0]["jax_images_per_s"] > 0


def test_throughput_cli_rejects_an_unknown_model_in_one_line(tmp_path):
    command = [sys.executable, "-m", "benchmarks.throughput", "--models", "lenet5,nope"]
    command += ["--json", str(tmp_path / "x.json")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: No PyTorch reference for nope")
    assert not (tmp_path / "x.json").exists()


def test_epoch_time_runs_the_real_loop(tmp_path):
    write_idx_dataset(tmp_path / "data", "mnist")
    out = tmp_path / "epochs.json"
    argv = ["--models", "lenet5", "--datasets", "mnist", "--data-dir", str(tmp_path / "data")]
    argv += ["--batch-size", "16", "--steps", "3", "--eval-examples", "8", "--json", str(out)]
    argv += ["--compilation-cache-dir", ""]
    epoch_time.main(argv)
    (row,) = json.loads(out.read_text())["runs"]
    assert row["timed_steps"] == 3
    # 240 fake training images less the 24 held out for validation, in batches of 16.
    assert row["full_epoch_steps"] == 216 // 16
    assert row["train_epoch_s"] == pytest.approx(row["train_s_per_step"] * 13)
    assert row["epoch_s"] == pytest.approx(row["train_epoch_s"] + row["validation_s"])


def test_torch_side_runs_channels_last_under_bfloat16_autocast():
    side = throughput.TorchSide(
        "lenet5", (28, 28, 1), 4, torch.device("cpu"), "bfloat16", channels_last=True
    )
    assert side.run(1) > 0 and side.peak_bytes() > side.persistent_bytes()
    weight = next(side.model.parameters())
    assert weight.dtype == torch.float32  # autocast computes in bfloat16, the weights stay


def test_a_torch_compile_failure_is_reported_not_raised(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("no compiler\nmore detail")

    monkeypatch.setattr(torch, "compile", fail)
    unit = throughput.Unit("compile", "float32", "mnist", "lenet5")
    args = throughput.parse_args(["--models", "lenet5", "--json", "x", "--batch-size", "4"])
    row = {"jax_images_per_s": 1.0, "torch_channels_last": False}
    figures = throughput.compile_figures(unit, row, args, torch.device("cpu"))
    assert figures == {
        "torch_compile_images_per_s": None,
        "torch_compile_error": "RuntimeError: no compiler",
    }


X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni

processor\t: 1
flags\t\t: fpu avx512f
"""
ARM_CPUINFO = """processor\t: 0
Features\t: fp asimd evtstrm aes sve sve2 cpuid
CPU implementer\t: 0x41
"""


def test_the_machine_record_names_the_vector_extensions(tmp_path):
    # The figures differ between CPUs with and without AVX-512 (issue 19): the record says which.
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86_CPUINFO)
    info = throughput.cpu_info(cpuinfo)
    assert info["model name"] == "AMD EPYC 7B12"
    assert throughput.cpu_vector_extensions(info) == [
        "avx",
        "avx2",
        "f16c",
        "fma",
        "sse4_1",
        "sse4_2",
    ]
    cpuinfo.write_text(ARM_CPUINFO)
    assert throughput.cpu_vector_extensions(throughput.cpu_info(cpuinfo)) == [
        "asimd",
        "sve",
        "sve2",
    ]
    assert throughput.cpu_info(tmp_path / "absent") == {}

    machine = throughput.machine(torch.device("cpu"))
    line = report.machine_lines(machine)[0]
    assert all(flag in line for flag in machine["cpu_vector_extensions"])
    # The JAX step's compiler options on this CPU (trainers.xla_options), named in the line.
    assert machine["xla_compiler_options"] == xla_options.compiler_options("cpu")
    assert f"the JAX step compiled with `{xla_options.YNN_FUSION_FLAG}=" in line
    old_record = {k: v for k, v in machine.items() if not k.startswith("cpu_") or k == "cpu_count"}
    assert "vector extensions" not in report.machine_lines(old_record)[0]


def test_jit_modes_cli_times_both_modes_of_the_train_step(tmp_path):
    out = tmp_path / "modes.json"
    jit_modes.main(
        ["--models", "lenet5", "--dataset", "mnist", "--batch-size", "8", "--rounds", "2"]
        + ["--round-seconds", "0", "--json", str(out)]
    )
    (row,) = json.loads(out.read_text())["models"]
    assert row["graph_ms_per_step"] > 0 and row["tree_ms_per_step"] > 0
    assert len(row["graph_over_tree_per_round"]) == 2


def test_banded_conv_cli_times_xla_against_the_banded_matmuls(tmp_path, capsys):
    out = tmp_path / "banded.json"
    banded_conv.main(
        ["--models", "lenet5", "--dataset", "mnist", "--batch-size", "2", "--rounds", "2"]
        + ["--round-seconds", "0", "--json", str(out)]
    )
    (row,) = json.loads(out.read_text())["models"]
    # LeNet-5's C1 and C3: Eigen runs their forward passes, C3's input gradient and, at batch
    # 2, both kernel gradients (their features are the batch and the output channels); banded,
    # none is left.
    assert (row["xla_eigen_convolutions"], row["banded_eigen_convolutions"]) == (5, 0)
    assert row["xla_ms_per_step"] > 0 and row["banded_ms_per_step"] > 0
    assert len(row["xla_over_banded_per_round"]) == 2
    assert banded_conv.cpu_forms.BANDED_MAX_IN_FEATURES == row["max_in_features"] > 0
    table = capsys.readouterr().out.splitlines()[-3:]
    assert table[0].startswith("| model | dataset | Eigen convolutions, XLA / banded |")
    assert table[1] == "|---|---|" + "---:|" * 7
    assert table[2].startswith(f"| lenet5 | mnist | 5 / 0 | {row['xla_ms_per_step']} |")


def test_stored_inputs_cli_times_fused_against_stored_convolution_inputs(tmp_path, capsys):
    out = tmp_path / "stored.json"
    stored_inputs.main(
        ["--models", "resnet20", "--dataset", "mnist", "--batch-size", "2", "--rounds", "2"]
        + ["--round-seconds", "0", "--json", str(out)]
    )
    (row,) = json.loads(out.read_text())["models"]
    # ResNet-20's 18 native convolutions (its stem is a banded matmul): stored, each kernel
    # gradient's input copy reads one array; fused, the copies recompute BatchNorm, ReLU and
    # the residual sums from their inputs.
    assert row["kernel_gradients"] == row["stored_input_reads"] == 18
    assert row["fused_input_reads"] > 2 * 18
    assert row["fused_ms_per_step"] > 0 and row["stored_ms_per_step"] > 0
    assert len(row["fused_over_stored_per_round"]) == 2
    assert stored_inputs.cpu_forms.STORE_NATIVE_INPUTS
    table = capsys.readouterr().out.splitlines()[-3:]
    assert table[0].startswith("| model | dataset | kernel gradients |")
    assert table[2].startswith(f"| resnet20 | mnist | 18 | {row['fused_input_reads']} / 18 |")


# A hand-written optimised CPU program with one convolution on each route.
ROUTED_HLO = (REPO / "tests" / "data" / "routed_step.hlo.txt").read_text()


def test_conv_routing_names_each_convolutions_library_and_why():
    found = {conv.name: conv for conv in conv_routing.convolutions(ROUTED_HLO)}
    assert set(found) == {"convolution.1", "convolution.2", "convolution.3"}
    ynn, loop, eigen = found["convolution.1"], found["convolution.2"], found["convolution.3"]
    assert (ynn.route, ynn.role, ynn.refusals) == ("YNNPACK", "forward", [])
    assert ynn.gflops == pytest.approx(2 * 32 * 16 * 16 * 32 * 9 * 64 / 1e9)
    assert (loop.route, loop.role) == ("XLA loop emitter", "kernel gradient")
    assert loop.refusals == ["layout f01b_i01o->01bf, not b01f_01io->b01f"]
    assert (eigen.route, eigen.role) == ("Eigen", "input gradient")
    assert eigen.refusals == [
        "input dilation (a strided convolution's input gradient)",
        "output 16x16 larger than input 8x8",
    ]
    # The products with the inserted zeros are not counted.
    assert eigen.gflops == pytest.approx(2 * 32 * 16 * 16 * 32 * 9 * 64 / 4 / 1e9)


def test_conv_routing_cli_reads_the_real_train_step(tmp_path):
    out = tmp_path / "routing.json"
    argv = ["--models", "resnet20", "--dataset", "mnist", "--batch-size", "2", "--json", str(out)]
    conv_routing.main(argv)
    (row,) = json.loads(out.read_text())["models"]
    routed = collections.Counter((conv["role"], conv["route"]) for conv in row["convolutions"])
    # ResNet-20's 3x3 convolutions but its stem (a banded matmul, whose input gradient the image
    # does not need), all in Eigen as the project compiles the step: 6 of 16 to 16 features,
    # too narrow for YNNPACK, two strided ones' input gradients (input dilation), and 12 wider
    # ones whose forward pass, kernel gradient and (but the two) input gradient YNNPACK would
    # take by XLA's default.
    assert routed == {
        ("forward", "Eigen"): 18,
        ("input gradient", "Eigen"): 18,
        ("kernel gradient", "Eigen"): 18,
    }
    switched_off = collections.Counter(
        conv["role"]
        for conv in row["convolutions"]
        if conv["refusals"] == [conv_routing.SWITCHED_OFF]
    )
    assert switched_off == {"forward": 12, "input gradient": 10, "kernel gradient": 12}
    for conv in row["convolutions"]:
        if conv["refusals"] != [conv_routing.SWITCHED_OFF] and conv["role"] != "kernel gradient":
            narrow = any("both <= 16" in reason for reason in conv["refusals"])
            assert narrow or conv["refusals"][0].startswith("input dilation")


def test_cpu_convolutions_cli_times_ynnpack_against_eigen(tmp_path, capsys):
    out = tmp_path / "cpu_convolutions.json"
    cpu_convolutions.main(
        ["--models", "resnet20", "--dataset", "mnist", "--batch-size", "2", "--rounds", "2"]
        + ["--round-seconds", "0", "--json", str(out)]
    )
    (row,) = json.loads(out.read_text())["models"]
    # The 12 forward passes and kernel gradients and 10 input gradients YNNPACK takes by XLA's
    # default (test_conv_routing_cli_reads_the_real_train_step) go to Eigen.
    assert (row["ynnpack_ynnpack_convolutions"], row["ynnpack_eigen_convolutions"]) == (34, 20)
    assert (row["eigen_ynnpack_convolutions"], row["eigen_eigen_convolutions"]) == (0, 54)
    assert row["compiler_options"] == xla_options.CPU_COMPILER_OPTIONS
    assert row["ynnpack_ms_per_step"] > 0 and row["eigen_ms_per_step"] > 0
    assert len(row["ynnpack_over_eigen_per_round"]) == 2
    table = capsys.readouterr().out.splitlines()[-3:]
    assert table[2].startswith("| resnet20 | mnist | 34 / 20 | 0 / 54 |")
