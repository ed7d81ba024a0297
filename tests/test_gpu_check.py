"""The GPU check's pieces, on the CPU: the budgeted benchmark plan, the check's steps and files,
and the wheel list a GPU machine needs."""

import importlib.metadata
import json
import re
import tarfile
import time

import pytest
from packaging.requirements import Requirement

from benchmarks import gpu_check, report, throughput


class FakeClock:
    """`time` for the benchmark module, with a perf_counter that moves only when a fake row
    "works", so the budget decisions do not depend on the machine's load."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        return getattr(time, name)


CLOCK = FakeClock()


def fake_row(unit: throughput.Unit, args, device, precision) -> dict:
    """An eager row without the work: one second of the fake clock in its place."""
    if unit.model == "alexnet":
        raise RuntimeError("out of memory\nwhile allocating")
    CLOCK.now += 1.0
    return {
        "model": unit.model,
        "params": 1,
        "jax_images_per_s": 200.0,
        "torch_images_per_s": 100.0,
        "ratio": 2.0,
        "ratio_median": 2.0,
        "compile_s": 0.1,
        "achieved_gflops": 1.0,
        "torch_achieved_gflops": 0.5,
        "peak_memory_mb": 1.0,
        "torch_peak_memory_mb": 1.0,
        "load_average": [0.0],
    }


def fake_peak(*args, **kwargs) -> dict[str, float]:
    return {"jax": 100.0, "torch": 50.0}


def test_the_budgeted_plan_runs_what_fits_and_lists_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(throughput, "eager_row", fake_row)
    monkeypatch.setattr(throughput, "matmul_peak_gflops", fake_peak)
    monkeypatch.setattr(throughput, "time", CLOCK)
    out = tmp_path / "bench.json"
    argv = ["--models", "alexnet,lenet5", "--dataset", "mnist,cifar10", "--peak-size", "64"]
    argv += ["--compute-dtype", "float32,bfloat16", "--budget-s", "1.5", "--json", str(out)]
    argv += ["--markdown", str(tmp_path / "bench.md"), "--torch-device", "cpu"]
    results = throughput.main(argv)
    assert results == json.loads(out.read_text())
    assert results["finished"] and results["pending"] == []
    rows = [
        (t["compute_dtype"], t["dataset"], r["model"])
        for t in results["tables"]
        for r in t["models"]
    ]
    failed = [(u["compute_dtype"], u["dataset"], u["model"]) for u in results["failed"]]
    skipped = [(u["compute_dtype"], u["dataset"], u["model"]) for u in results["skipped"]]
    # The plan's order: dtype, then dataset, then model; the first unit always starts, and a
    # unit that fails is reported without stopping the plan.
    assert failed == [("float32", "mnist", "alexnet")]
    assert rows == [("float32", "mnist", "lenet5")]
    assert "out of memory" in results["failed"][0]["error"]
    assert skipped and all("budget" in u["reason"] for u in results["skipped"])
    assert len(rows) + len(failed) + len(skipped) == 8
    # No torch.compile rows on the CPU unless asked for.
    assert {u["kind"] for u in results["skipped"] + results["failed"]} == {"eager"}
    table = results["tables"][0]
    assert table["precision"] == "float32" and table["peak_gflops"] == 100.0
    assert table["models"][0]["mfu"] == pytest.approx(0.01)
    markdown = (tmp_path / "bench.md").read_text()
    assert (
        "| lenet5 |" in markdown and "- Skipped: " in markdown and "- Failed: alexnet" in markdown
    )


def test_a_budget_spent_before_the_first_row_skips_every_row(tmp_path, monkeypatch):
    monkeypatch.setattr(throughput, "eager_row", fake_row)
    monkeypatch.setattr(throughput, "matmul_peak_gflops", fake_peak)
    argv = ["--models", "lenet5", "--dataset", "mnist", "--budget-s", "0.0001", "--json"]
    results = throughput.main([*argv, str(tmp_path / "b.json"), "--peak-size", "64"])
    assert results["models"] == [] and len(results["skipped"]) == 1
    assert results["compute_dtype"] == "float32"  # one table: the flat format of old


def test_budget_estimates_from_the_rows_already_run():
    budget = throughput.Budget(100.0)
    lenet = throughput.Unit("eager", "float32", "mnist", "lenet5")
    assert budget.estimate(lenet) == 0.0
    budget.record(lenet, 3.0)
    budget.record(throughput.Unit("eager", "float32", "mnist", "vgg16"), 20.0)
    assert budget.estimate(throughput.Unit("eager", "bfloat16", "mnist", "lenet5")) == 3.0
    # A model not yet run: the longest so far (the cheaper models run first).
    assert budget.estimate(throughput.Unit("eager", "float32", "mnist", "resnet18")) == 20.0
    assert budget.estimate(throughput.Unit("compile", "float32", "mnist", "lenet5")) == 6.0
    budget.seconds = 10.0
    assert not budget.fits(throughput.Unit("eager", "float32", "cifar10", "vgg16"))
    assert budget.fits(throughput.Unit("eager", "float32", "cifar10", "lenet5"))


def test_pytest_summary_reads_the_last_line():
    text = "F.\n!!! stopping after 1 failures !!!\n1 failed, 3 passed, 2 skipped in 4.20s\n"
    assert gpu_check.pytest_summary(text) == {"failed": 1, "passed": 3, "skipped": 2}
    assert gpu_check.pytest_summary("1 error in 0.5s") == {"error": 1}
    assert gpu_check.pytest_summary("no summary") == {}


def test_the_check_writes_its_directory_and_tarball(tmp_path, monkeypatch):
    tests = tmp_path / "test_sample.py"
    tests.write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert False\n")
    monkeypatch.setattr(gpu_check, "THROUGHPUT_STARTUP_S", 0.0)
    out = tmp_path / "check"
    argv = ["--out", str(out), "--models", "lenet5", "--datasets", "mnist"]
    argv += ["--compute-dtypes", "float32", "--batch-size", "8", "--bench-seconds", "0"]
    argv += ["--budget-s", "300", "--peak-size", "128", "--skip", "train"]
    argv += ["--tests", f"{tests},tests/no_such_test.py", "--tests-budget-s", "60"]
    assert gpu_check.main(argv) == 0
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files >= {
        "README.md",
        "check.json",
        "machine/machine.json",
        "machine/packages.txt",
        "tests.txt",
        "tests.json",
        "throughput.json",
        "throughput.md",
        "throughput.log",
    }
    summary = json.loads((out / "check.json").read_text())
    first, missing = summary["tests"]
    assert first["status"] == "failed" and first["counts"] == {"failed": 1, "passed": 1}
    assert missing == {
        "tests": "tests/no_such_test.py",
        "status": "skipped",
        "reason": "no such file",
    }
    assert summary["phases"]["tests"]["status"] == "failed"
    assert summary["phases"]["throughput"]["status"] == "ok", summary["phases"]["throughput"]
    assert summary["phases"]["train"] == {"status": "skipped", "detail": "--skip"}
    assert summary["machine"]["probe"]["jax_backend"] == "cpu"
    readme = (out / "README.md").read_text()
    assert "| lenet5 |" in readme and "| tests | failed |" in readme
    with tarfile.open(tmp_path / "check.tar.gz") as archive:
        names = set(archive.getnames())
    assert {"check/README.md", "check/throughput.json", "check/tests.txt"} <= names


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names) -> set[str]:
    """The installed distributions `names` need, with their own needs, on Linux, Python 3.12."""
    seen: set[str] = set()
    stack = [(name, ()) for name in names]
    environment = {"python_version": "3.12", "sys_platform": "linux", "platform_system": "Linux"}
    while stack:
        name, extras = stack.pop()
        key = (normal(name), tuple(sorted(extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            markers = [{**environment, "extra": extra} for extra in ("", *extras)]
            if requirement.marker is None or any(requirement.marker.evaluate(m) for m in markers):
                stack.append((requirement.name, tuple(requirement.extras)))
    return {name for name, _ in seen}


def test_the_wheels_cover_what_the_machine_lacks():
    needed = closure(
        ["clu", "ml_collections", "tensorflow-datasets", "pooch", "requests", "tqdm", "pytest"]
    )
    present = closure(gpu_check.GPU_MACHINE_HAS)
    wheels = {
        normal(n)
        for n in (*gpu_check.WHEELS, *gpu_check.WITHOUT_DEPENDENCIES, *gpu_check.SOURCE_ONLY)
    }
    left_out = {normal(n) for n in gpu_check.LEFT_OUT}
    assert needed - present - left_out <= wheels
    # Every module the check needs is on the machine or among the wheels.
    for package in gpu_check.NEEDED_MODULES.values():
        assert normal(package) in wheels | present


def test_the_wheel_commands_name_every_wheel(tmp_path):
    download, build = gpu_check.wheel_commands(str(tmp_path))
    assert download[download.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in download and "--no-deps" in download
    named = {normal(a.split("==")[0]) for a in download if not a.startswith("-")}
    assert {normal(n) for n in (*gpu_check.WHEELS, *gpu_check.WITHOUT_DEPENDENCIES)} <= named
    assert not {normal(n) for n in gpu_check.LEFT_OUT} & named
    assert build[-1] == "promise==2.3"
    with_dependencies, without = gpu_check.install_commands(tmp_path)
    assert with_dependencies[-2:] == ["-r", str(tmp_path / "requirements.txt")]
    assert "--no-index" in with_dependencies and without[-2:] == [
        "--no-deps",
        "tensorflow-datasets",
    ]


def test_report_reads_both_json_forms():
    table = {"dataset": "mnist", "models": []}
    assert report.tables_of(table) == [table]
    both = {"command": "x", "tables": [table, table]}
    assert report.tables_of(both) == [{"command": "x"} | table] * 2
