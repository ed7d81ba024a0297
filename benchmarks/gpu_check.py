"""One command that checks the project on a GPU machine and packs the results to copy home.

    python -m benchmarks.gpu_check --out runs/gpu_check --wheels wheels/

On a machine with a GPU and no network, from the repository root, this runs in turn, each step
in its own process so that a crash or a hang in one does not stop the next:

1. `--wheels DIR`: installs what the project needs beyond the machine's own packages from the
   wheels prepared below.
2. Records the machine: `nvidia-smi`, `jax.devices()`, `torch.cuda.get_device_name`, the
   versions of every installed package (`machine/`).
3. The test suite's fast subset (no browser, network or Hugging Face models), one pytest
   process per file with `-x -q`, within `--tests-budget-s` (`tests.txt`, `tests.json`). A
   failing file is reported and the check goes on.
4. `benchmarks.throughput` for the seven study models at both input shapes (CIFAR-10 32x32x3,
   MNIST 28x28x1), float32 (TF32 on a GPU) then bfloat16, then the `torch.compile` rows,
   within `--budget-s` (300 s: the benchmark part finishes in under 5 minutes). Rows run in
   that order, the cheaper models first, and a row whose expected time no longer fits is
   skipped and listed (`throughput.json`, `throughput.md`, `throughput.log`).
5. A short training run per model, `scripts.train` for one epoch on `--train-examples`
   examples, on generated data (`tests/fake_data.py`) or on the real files in `--data-dir`,
   within `--train-budget-s` (`train/`: each run's log, results JSON and curves).
6. `README.md`, a summary of all of it, and `DIR.tar.gz` beside DIR, rewritten after every step
   so that a check stopped from outside still leaves them.

It imports only the standard library itself, so it starts (and installs the wheels) before any
of the project's dependencies are importable.

Preparing the wheels, on a machine with network (Linux x86_64, any Python):

    python -m benchmarks.gpu_check --prepare-wheels wheels/

runs (versions pinned to this environment's where it has the package)

    python -m pip download --dest wheels --python-version 3.12 \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 --only-binary=:all: --no-deps \\
        array_record attrs certifi charset_normalizer clu dm-tree docstring_parser einops \\
        googleapis-common-protos idna immutabledict importlib_resources iniconfig \\
        ml_collections platformdirs pluggy pooch pytest requests simple_parsing six \\
        tensorflow-metadata termcolor toml tqdm urllib3 wrapt tensorflow-datasets \\
        absl-py etils packaging protobuf pygments typing_extensions
    python -m pip wheel --no-deps --wheel-dir wheels promise==2.3

(promise, which tensorflow-datasets imports, publishes no wheel; it is pure Python) and writes
`wheels/requirements.txt`, about 14 MB in all. The list is what clu, ml_collections,
tensorflow-datasets (imported by tests/test_pipeline.py), pooch and requests (imported by
trainers/data.py), tqdm and pytest need beyond JAX, jaxlib, flax, optax, orbax-checkpoint,
matplotlib and PyTorch and their own dependencies (`tests/test_gpu_check.py` checks it against
the installed metadata), less pyarrow: a 55 MB wheel that tensorflow-datasets declares but
imports only to read Parquet files, which this project never does. The last six are there only
so that pip can replace an older copy on the machine that a new package refuses. On the GPU
machine, `--wheels wheels/` runs

    python -m pip install --no-index --find-links wheels -r wheels/requirements.txt
    python -m pip install --no-index --find-links wheels --no-deps tensorflow-datasets

(packages already installed are left as they are; the second command installs
tensorflow-datasets without pyarrow, its other dependencies being in the first).
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The cheaper models first: with a budget, the most rows fit, and a model's first row tells
# the budget how long its later ones take.
STUDY_MODELS = ("lenet5", "alexnet", "vgg16", "resnet18", "senet18", "xception", "googlenet")
# No browser, network or Hugging Face model: the pipeline end to end first, the benchmark's
# own tests (on the GPU) before the slow lowering comparisons.
FAST_TESTS = (
    "tests/test_pipeline.py",
    "tests/test_steps_per_call.py",
    "tests/test_models.py",
    "tests/test_benchmarks.py",
    "tests/test_accelerator_forms.py",
)
# What the GPU machines this project can use have installed (with their own dependencies).
GPU_MACHINE_HAS = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "matplotlib", "torch")
# What the project and the checked tests import beyond those, with everything they need.
WHEELS = (
    "array_record",
    "attrs",
    "certifi",
    "charset_normalizer",
    "clu",
    "dm-tree",
    "docstring_parser",
    "einops",
    "googleapis-common-protos",
    "idna",
    "immutabledict",
    "importlib_resources",
    "iniconfig",
    "ml_collections",
    "platformdirs",
    "pluggy",
    "pooch",
    "pytest",
    "requests",
    "simple_parsing",
    "six",
    "tensorflow-metadata",
    "termcolor",
    "toml",
    "tqdm",
    "urllib3",
    "wrapt",
)
# Installed without its declared dependencies, to leave out pyarrow (see above).
WITHOUT_DEPENDENCIES = ("tensorflow-datasets",)
LEFT_OUT = {"pyarrow": "tensorflow-datasets imports it only for Parquet files"}
# Published as source only; built here into a pure-Python wheel.
SOURCE_ONLY = {"promise": "2.3"}
# Downloaded but not required: newer copies pip may install over the machine's own when a new
# package needs them (googleapis-common-protos a recent protobuf, pytest recent packaging).
FALLBACK_WHEELS = ("absl-py", "etils", "packaging", "protobuf", "pygments", "typing_extensions")
# Import names the check needs, and the package that provides each.
NEEDED_MODULES = {
    "jax": "jax",
    "flax": "flax",
    "optax": "optax",
    "orbax.checkpoint": "orbax-checkpoint",
    "matplotlib": "matplotlib",
    "torch": "torch",
    "clu": "clu",
    "ml_collections": "ml_collections",
    "tensorflow_datasets": "tensorflow-datasets",
    "pooch": "pooch",
    "requests": "requests",
    "tqdm": "tqdm",
    "absl": "absl-py",
    "pytest": "pytest",
}
PHASES = ("tests", "throughput", "train")
THROUGHPUT_STARTUP_S = 30.0  # importing JAX and PyTorch and starting CUDA in the benchmark


def wheel_pins() -> dict[str, str | None]:
    """Each wheel's version in this environment, None where it is not installed."""
    pins = {}
    for name in (*WHEELS, *WITHOUT_DEPENDENCIES, *FALLBACK_WHEELS):
        try:
            pins[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pins[name] = None
    return pins


# pip takes a --platform tag literally: the older manylinux tags that a glibc 2.28 machine also
# runs must be named as well.
WHEEL_PLATFORMS = "manylinux_2_28_x86_64,manylinux_2_17_x86_64,manylinux2014_x86_64"


def wheel_commands(directory: str, platforms: str = WHEEL_PLATFORMS) -> list[list[str]]:
    pins = [f"{n}=={v}" if v else n for n, v in wheel_pins().items()]
    download = [sys.executable, "-m", "pip", "download", "--dest", directory]
    download += ["--python-version", "3.12"]
    for tag in filter(None, platforms.split(",")):
        download += ["--platform", tag]
    download += ["--only-binary=:all:", "--no-deps", *pins]
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", directory]
    build += [f"{n}=={v}" for n, v in SOURCE_ONLY.items()]
    return [download, build]


def prepare_wheels(directory: str, platforms: str = WHEEL_PLATFORMS) -> int:
    Path(directory).mkdir(parents=True, exist_ok=True)
    for command in wheel_commands(directory, platforms):
        print("+", " ".join(command), flush=True)
        done = subprocess.run(command)
        if done.returncode:
            return done.returncode
    requirements = Path(directory) / "requirements.txt"
    requirements.write_text("\n".join([*WHEELS, *SOURCE_ONLY]) + "\n")
    print(f"Wrote {requirements}; copy {directory} to the GPU machine.")
    return 0


def install_commands(directory: Path) -> list[list[str]]:
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(directory)]
    return [
        [*pip, "-r", str(directory / "requirements.txt")],
        [*pip, "--no-deps", *WITHOUT_DEPENDENCIES],
    ]


def missing_modules() -> dict[str, str]:
    """Needed import names that this Python cannot find, with the package for each."""
    missing = {}
    for module, package in NEEDED_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing[module] = package
    return missing


def pytest_summary(text: str) -> dict[str, int]:
    """Counts from pytest's last summary line: {'passed': 12, 'failed': 1, ...}."""
    for line in reversed(text.splitlines()):
        counts = re.findall(
            r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)", line
        )
        if counts and " in " in line:
            return {kind.rstrip("s") if kind == "errors" else kind: int(n) for n, kind in counts}
    return {}


# Run in a child with the machine's JAX and PyTorch: what they see, as JSON.
PROBE = r"""
import json, platform, sys
info = {"python": sys.version, "platform": platform.platform()}
try:
    import jax
    info["jax"] = jax.__version__
    info["jax_backend"] = jax.default_backend()
    info["jax_devices"] = [str(d) for d in jax.devices()]
    info["jax_device_kind"] = jax.devices()[0].device_kind
    stats = jax.devices()[0].memory_stats()
    info["jax_memory_limit_gb"] = stats and stats.get("bytes_limit", 0) / 2**30
except Exception as error:
    info["jax_error"] = repr(error)
try:
    import torch
    info["torch"] = torch.__version__
    info["torch_cuda_available"] = torch.cuda.is_available()
    info["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        info["torch_device_name"] = torch.cuda.get_device_name(0)
        info["torch_device_capability"] = list(torch.cuda.get_device_capability(0))
        info["torch_device_memory_gb"] = torch.cuda.get_device_properties(0).total_memory / 2**30
        info["cudnn"] = torch.backends.cudnn.version()
except Exception as error:
    info["torch_error"] = repr(error)
for module in ("trainers.train", "benchmarks.throughput"):
    try:
        __import__(module)
    except Exception as error:
        info.setdefault("import_errors", {})[module] = repr(error)
print(json.dumps(info))
"""

# Writes generated datasets in the publishers' formats (argument: the directory).
FAKE_DATA = r"""
import sys
from pathlib import Path
from tests.fake_data import write_cifar_dataset, write_idx_dataset
root = Path(sys.argv[1])
write_idx_dataset(root, "mnist", num_train=1200, num_test=200)
write_cifar_dataset(root, num_per_batch=240, num_test=200)
"""


class Check:
    """The phases of the check, the summary they fill in and the files they write."""

    def __init__(self, args: argparse.Namespace, argv: list[str]):
        self.args = args
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.start = time.perf_counter()
        self.summary: dict = {
            "command": "python -m benchmarks.gpu_check " + " ".join(argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "phases": {},
        }

    # --- running children -------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        # JAX would take most of the GPU's memory up front; PyTorch shares it in the benchmark.
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        env.setdefault("TFDS_DISABLE_GCS", "1")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def call(
        self,
        command: list[str],
        log: Path,
        timeout_s: float,
        env: dict[str, str] | None = None,
        append: bool = False,
    ) -> dict:
        """Runs `command` from the repository root, stdout and stderr into `log`; past
        `timeout_s` its whole process group is stopped. Returns rc, seconds, timed_out."""
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with log.open("a" if append else "w") as handle:
            handle.write(f"$ {' '.join(command)}\n")
            handle.flush()
            try:
                process = subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=env or self.env(),
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                handle.write(f"could not start: {error}\n")
                return {"rc": None, "seconds": 0.0, "timed_out": False, "error": str(error)}
            timed_out = False
            try:
                rc = process.wait(timeout=max(timeout_s, 1.0))
            except subprocess.TimeoutExpired:
                timed_out = True
                stop_group(process)
                rc = process.returncode
            seconds = time.perf_counter() - start
            handle.write(
                f"\n[exit status {rc}{', stopped at the time limit' if timed_out else ''}, "
                f"{seconds:.1f} s]\n"
            )
        return {"rc": rc, "seconds": round(seconds, 1), "timed_out": timed_out}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    # --- phases -------------------------------------------------------------------------

    def wheels(self) -> None:
        directory = Path(self.args.wheels).resolve()
        log = self.out / "wheels.txt"
        if not (directory / "requirements.txt").is_file():
            self.summary["phases"]["wheels"] = {
                "status": "failed",
                "detail": f"{directory}/requirements.txt not found: prepare it with "
                "--prepare-wheels",
            }
            return
        log.write_text("")
        seconds, failed = 0.0, []
        for command in install_commands(directory):
            result = self.call(command, log, 300, append=True)
            if result["rc"] and "externally-managed-environment" in log.read_text():
                # A system Python that refuses pip (PEP 668); this machine is a throwaway one.
                command = [*command, "--break-system-packages"]
                result = self.call(command, log, 300, append=True)
            seconds += result["seconds"]
            if result["rc"] != 0:
                failed.append(" ".join(command[command.index("--find-links") + 2 :]))
        self.summary["phases"]["wheels"] = {
            "status": "failed" if failed else "ok",
            "seconds": round(seconds, 1),
            "detail": f"pip install from {directory}"
            + (f", failed: {'; '.join(failed)}" if failed else "")
            + ", log wheels.txt",
        }

    def machine(self) -> None:
        directory = self.out / "machine"
        directory.mkdir(exist_ok=True)
        info: dict = {
            "python": sys.version,
            "executable": sys.executable,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "environment": {
                k: os.environ[k]
                for k in (
                    "CUDA_VISIBLE_DEVICES",
                    "XLA_FLAGS",
                    "JAX_PLATFORMS",
                    "XLA_PYTHON_CLIENT_PREALLOCATE",
                )
                if k in os.environ
            },
        }
        if shutil.which("nvidia-smi"):
            self.call(["nvidia-smi"], directory / "nvidia-smi.txt", 60)
            query = "name,memory.total,driver_version,compute_cap,clocks.max.sm,power.limit"
            done = subprocess.run(
                ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            info["nvidia_smi"] = done.stdout.strip().splitlines()
        else:
            info["nvidia_smi"] = None
        probe_log = directory / "probe.txt"
        result = self.call([sys.executable, "-c", PROBE], probe_log, 180)
        probe = last_json_line(probe_log.read_text())
        info["probe"] = probe or {"error": f"the probe failed, see machine/probe.txt ({result})"}
        packages = sorted(
            (d.metadata["Name"] or "?", d.version) for d in importlib.metadata.distributions()
        )
        (directory / "packages.txt").write_text("".join(f"{n}=={v}\n" for n, v in packages))
        info["missing_modules"] = missing_modules()
        (directory / "machine.json").write_text(json.dumps(info, indent=2))
        self.summary["machine"] = info
        problems = [f"missing {m}" for m in info["missing_modules"]]
        problems += [f"{k}: {v}" for k, v in (probe or {}).get("import_errors", {}).items()]
        self.summary["phases"]["machine"] = {
            "status": "ok" if probe and not problems else "problems",
            "seconds": result["seconds"],
            "detail": "; ".join(problems) or "machine/machine.json",
        }

    def tests(self) -> None:
        budget = self.args.tests_budget_s
        start = time.perf_counter()
        log = self.out / "tests.txt"
        log.write_text("")
        files = [f for f in self.args.tests.split(",") if f]
        missing = missing_modules()
        results = []
        env = self.env()
        if self.args.tests_on == "device":
            env["JAX_PLATFORMS"] = ""  # tests/conftest.py picks the CPU only when it is unset
        for name in files:
            path = REPO / name.split("::")[0]
            left = budget - (time.perf_counter() - start)
            reason = None
            if "pytest" in missing:
                reason = "pytest is not installed (see --wheels)"
            elif not path.exists():
                reason = "no such file"
            elif "tensorflow_datasets" in missing and needs_tfds(path):
                reason = "imports tensorflow_datasets, not installed (see --wheels)"
            elif left < 5:
                reason = f"budget: {budget:.0f} s spent"
            if reason:
                results.append({"tests": name, "status": "skipped", "reason": reason})
                continue
            command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", name]
            before = len(log.read_text())
            result = self.call(command, log, left, env=env, append=True)
            summary = pytest_summary(log.read_text()[before:])
            if result["timed_out"]:
                status = "timed out"
            elif result["rc"] == 0:
                status = "passed"
            elif result["rc"] == 5:
                status = "no tests"
            else:
                status = "failed"
            results.append({"tests": name, "status": status, "counts": summary} | result)
        (self.out / "tests.json").write_text(json.dumps(results, indent=2))
        ran = [r for r in results if r["status"] != "skipped"]
        bad = [r for r in results if r["status"] in ("failed", "timed out")]
        self.summary["tests"] = results
        self.summary["phases"]["tests"] = {
            "status": "failed" if bad else ("ok" if ran else "skipped"),
            "seconds": round(time.perf_counter() - start, 1),
            "detail": f"{len(ran)} of {len(results)} files run, "
            f"{sum(r['status'] == 'passed' for r in results)} passed"
            + (f", failing: {', '.join(r['tests'] for r in bad)}" if bad else ""),
        }

    def throughput(self) -> None:
        budget = self.args.budget_s
        json_path = self.out / "throughput.json"
        markdown = self.out / "throughput.md"
        for stale in (json_path, markdown):
            stale.unlink(missing_ok=True)
        command = [sys.executable, "-m", "benchmarks.throughput"]
        command += ["--models", self.args.models, "--dataset", self.args.datasets]
        command += ["--compute-dtype", self.args.compute_dtypes]
        command += ["--batch-size", str(self.args.batch_size)]
        command += ["--seconds", str(self.args.bench_seconds), "--round-seconds", "0.25"]
        command += ["--rounds", "3", "--min-steps", "3", "--peak-size", str(self.args.peak_size)]
        command += ["--torch-compile", self.args.torch_compile]
        command += ["--budget-s", f"{max(budget - THROUGHPUT_STARTUP_S, 1.0):.0f}"]
        command += ["--json", str(json_path), "--markdown", str(markdown)]
        result = self.call(command, self.out / "throughput.log", budget)
        results = json.loads(json_path.read_text()) if json_path.exists() else None
        if results is None:
            self.summary["phases"]["throughput"] = result | {
                "status": "failed",
                "detail": "no results; see throughput.log",
            }
            return
        tables = results.get("tables", [results])
        rows = sum(len(t["models"]) for t in tables)
        eager_planned = (
            len(self.args.models.split(","))
            * len(self.args.datasets.split(","))
            * len(self.args.compute_dtypes.split(","))
        )
        skipped = results["skipped"] + [
            u | {"reason": "the benchmark was stopped at the budget"} for u in results["pending"]
        ]
        self.summary["throughput"] = {
            "rows": rows,
            "planned_rows": eager_planned,
            "skipped": skipped,
            "failed": results["failed"],
            "finished": results["finished"],
        }
        status = "ok" if rows == eager_planned and not results["failed"] else "partial"
        if rows == 0:
            status = "failed"
        self.summary["phases"]["throughput"] = result | {
            "status": status,
            "detail": f"{rows} of {eager_planned} rows; skipped: {len(skipped)}, "
            f"failed: {len(results['failed'])}",
        }

    def train(self) -> None:
        budget = self.args.train_budget_s
        start = time.perf_counter()
        directory = self.out / "train"
        directory.mkdir(exist_ok=True)
        runs = []
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            if self.args.data_dir:
                data_dir, source = str(Path(self.args.data_dir).expanduser().resolve()), "files"
            else:
                data_dir, source = str(scratch / "data"), "generated"
                made = self.call(
                    [sys.executable, "-c", FAKE_DATA, data_dir], directory / "data.log", 120
                )
                if made["rc"] != 0:
                    self.summary["phases"]["train"] = made | {
                        "status": "failed",
                        "detail": "could not write the generated data; see train/data.log",
                    }
                    return
            for model in self.args.models.split(","):
                left = budget - (time.perf_counter() - start)
                if left < 5:
                    runs.append({"model": model, "status": "skipped", "reason": "budget"})
                    continue
                workdir = scratch / "runs" / model
                command = [sys.executable, "-m", "scripts.train", "--config=configs/default.py"]
                command += [f"--workdir={workdir}", f"--config.model={model}"]
                command += [f"--config.dataset={self.args.train_dataset}"]
                command += [f"--config.data_dir={data_dir}", "--config.data_source=files"]
                command += ["--config.num_epochs=1", "--config.compilation_cache_dir="]
                command += [f"--config.max_train_examples={self.args.train_examples}"]
                command += [f"--config.batch_size={self.args.train_batch_size}"]
                result = self.call(command, directory / f"{model}.log", left)
                run = {"model": model, "data": source} | result
                for produced in sorted(workdir.glob("*.json")) + sorted(workdir.glob("*.png")):
                    shutil.copy2(produced, directory / produced.name)
                found = sorted(workdir.glob("*_results.json"))
                if result["rc"] == 0 and found:
                    results = json.loads(found[0].read_text())
                    run |= {
                        "status": "ok",
                        "dataset": results.get("dataset"),
                        "train_examples": results["config"].get("max_train_examples"),
                        "epochs": results.get("epochs"),
                        "test_accuracy": results.get("test_accuracy"),
                        "images_per_s": results.get("images_per_s"),
                        "compile_s": results.get("compile_s"),
                        "train_time_s": results.get("train_time_s"),
                        "device": device_of(results.get("environment", {})),
                    }
                else:
                    run["status"] = "timed out" if result["timed_out"] else "failed"
                runs.append(run)
        (directory / "runs.json").write_text(json.dumps(runs, indent=2))
        ok = sum(r["status"] == "ok" for r in runs)
        self.summary["train"] = runs
        self.summary["phases"]["train"] = {
            "status": "ok" if ok == len(runs) else ("partial" if ok else "failed"),
            "seconds": round(time.perf_counter() - start, 1),
            "detail": f"{ok} of {len(runs)} models trained ({source} data, "
            f"{self.args.train_dataset})",
        }

    # --- outputs ------------------------------------------------------------------------

    def write(self) -> Path:
        """README.md, check.json and the tarball, as they stand."""
        self.summary["seconds"] = round(self.elapsed(), 1)
        (self.out / "check.json").write_text(json.dumps(self.summary, indent=2, default=str))
        (self.out / "README.md").write_text(readme(self.summary, self.out))
        tarball = self.out.with_name(self.out.name + ".tar.gz")
        partial = tarball.with_name(tarball.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(self.out, arcname=self.out.name)
        partial.replace(tarball)
        return tarball

    def run(self) -> Path:
        if self.args.wheels:
            self.wheels()
            self.write()
        self.machine()
        self.write()
        for phase in PHASES:
            if phase in self.args.skip.split(","):
                self.summary["phases"][phase] = {"status": "skipped", "detail": "--skip"}
            else:
                print(f"[{self.elapsed():.0f} s] {phase}", file=sys.stderr, flush=True)
                getattr(self, phase)()
            self.write()
        return self.write()


def stop_group(process: subprocess.Popen) -> None:
    """Stops a child started in its own session and everything it started."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def last_json_line(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def needs_tfds(path: Path) -> bool:
    text = path.read_text()
    return "tensorflow_datasets" in text or "tests.test_pipeline import" in text


def machine_line(summary: dict) -> str:
    machine = summary.get("machine", {})
    probe = machine.get("probe", {})
    gpu = probe.get("torch_device_name") or (machine.get("nvidia_smi") or ["no GPU seen"])[0]
    return (
        f"{gpu}; JAX {probe.get('jax', '?')} on {probe.get('jax_backend', '?')} "
        f"({', '.join(probe.get('jax_devices', [])) or probe.get('jax_error', '?')}); PyTorch "
        f"{probe.get('torch', '?')} (CUDA {probe.get('torch_cuda')}, cuDNN {probe.get('cudnn')}, "
        f"sees a GPU: {probe.get('torch_cuda_available')}); Python "
        f"{machine.get('python', '?').split()[0]}, {machine.get('cpu_count')} CPUs"
    )


def readme(summary: dict, out: Path) -> str:
    lines = [
        f"# GPU check, {summary['started']}",
        "",
        f"`{summary['command']}`, {summary.get('seconds', 0):.0f} s in all.",
        "",
        f"Machine: {machine_line(summary)}.",
    ]
    if summary.get("machine", {}).get("nvidia_smi"):
        lines += ["", "nvidia-smi: " + "; ".join(summary["machine"]["nvidia_smi"])]
    lines += ["", "| step | status | seconds | detail |", "|---|---|---:|---|"]
    for name, phase in summary["phases"].items():
        lines.append(
            f"| {name} | {phase['status']} | {phase.get('seconds', '')} | {phase['detail']} |"
        )
    if summary.get("tests"):
        lines += ["", "## Tests", "", "| tests | status | counts | seconds |", "|---|---|---|---:|"]
        for result in summary["tests"]:
            counts = ", ".join(f"{n} {k}" for k, n in result.get("counts", {}).items())
            lines.append(
                f"| {result['tests']} | {result['status']} | "
                f"{counts or result.get('reason', '')} | {result.get('seconds', '')} |"
            )
        lines += ["", "Output: `tests.txt`."]
    markdown = out / "throughput.md"
    if "throughput" in summary["phases"]:
        lines += ["", "## Throughput", ""]
        if markdown.exists():
            lines += [markdown.read_text().rstrip()]
        throughput = summary.get("throughput", {})
        stopped = [u for u in throughput.get("skipped", []) if "stopped" in u.get("reason", "")]
        lines += [
            f"- Not reached: {u['model']}, {u['dataset']}, {u['compute_dtype']}, {u['kind']}"
            for u in stopped
        ]
        lines += ["", "Files: `throughput.json`, `throughput.md`, `throughput.log`."]
    if summary.get("train"):
        lines += [
            "",
            "## Training, one epoch per model",
            "",
            "| model | status | device | data | dataset | examples (at most) | test accuracy "
            "| img/s | compile s | train s | process s |",
            "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for run in summary["train"]:
            lines.append(
                f"| {run['model']} | {run['status']} | {run.get('device', '')} | "
                f"{run.get('data', '')} | {run.get('dataset', '')} | "
                f"{run.get('train_examples', '')} | "
                f"{fmt(run.get('test_accuracy'), '.3f')} | {fmt(run.get('images_per_s'), '.0f')} "
                f"| {fmt(run.get('compile_s'), '.1f')} | {fmt(run.get('train_time_s'), '.1f')} | "
                f"{run.get('seconds', '')} |"
            )
        lines += ["", "Files: `train/` (each run's log, results JSON and curves)."]
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    lines += ["", "## Files", "", ", ".join(f"`{f}`" for f in files if f != "README.md")]
    return "\n".join(lines) + "\n"


def device_of(environment: dict) -> str:
    if not environment:
        return ""
    return f"{environment.get('device_count')} x {environment.get('device_kind')}"


def fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", help="directory for everything; DIR.tar.gz is written beside it")
    parser.add_argument(
        "--budget-s", type=float, default=300.0, help="seconds for the throughput benchmark"
    )
    parser.add_argument("--wheels", help="install the project's extra packages from here first")
    parser.add_argument(
        "--prepare-wheels",
        metavar="DIR",
        help="instead of checking: download the wheels a GPU machine needs into DIR (network)",
    )
    parser.add_argument(
        "--wheel-platforms",
        default=WHEEL_PLATFORMS,
        help="with --prepare-wheels: the GPU machine's platform tags, comma-separated",
    )
    parser.add_argument("--models", default=",".join(STUDY_MODELS), help="comma-separated")
    parser.add_argument("--datasets", default="cifar10,mnist", help="benchmark input shapes")
    parser.add_argument("--compute-dtypes", default="float32,bfloat16", help="benchmark dtypes")
    parser.add_argument("--batch-size", type=int, default=128, help="benchmark batch")
    parser.add_argument(
        "--bench-seconds", type=float, default=1.5, help="timed seconds per framework and row"
    )
    parser.add_argument("--torch-compile", choices=("auto", "on", "off"), default="auto")
    parser.add_argument(
        "--peak-size", type=int, default=0, help="peak matmul side; 0: the benchmark's default"
    )
    parser.add_argument("--tests", default=",".join(FAST_TESTS), help="comma-separated files")
    parser.add_argument("--tests-budget-s", type=float, default=120.0)
    parser.add_argument(
        "--tests-on",
        choices=("cpu", "device"),
        default="cpu",
        help="cpu: as the suite runs everywhere (tests/conftest.py); device: JAX's default",
    )
    parser.add_argument("--data-dir", help="real datasets ({dir}/{dataset}/); else generated")
    parser.add_argument("--train-dataset", default="mnist", choices=("mnist", "cifar10"))
    parser.add_argument("--train-examples", type=int, default=1024)
    parser.add_argument("--train-batch-size", type=int, default=64)
    parser.add_argument("--train-budget-s", type=float, default=120.0)
    parser.add_argument("--skip", default="", help=f"comma-separated steps of {', '.join(PHASES)}")
    args = parser.parse_args(argv)
    if not args.prepare_wheels and not args.out:
        parser.error("--out is required (or --prepare-wheels DIR)")
    unknown = set(filter(None, args.skip.split(","))) - set(PHASES)
    if unknown:
        parser.error(f"--skip takes {', '.join(PHASES)}, not {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.prepare_wheels:
        return prepare_wheels(args.prepare_wheels, args.wheel_platforms)
    tarball = Check(args, argv).run()
    print(f"Wrote {Path(args.out) / 'README.md'} and {tarball}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
