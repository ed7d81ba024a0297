"""Training throughput of the study's models: the project's JAX train step against PyTorch.

    python -m benchmarks.throughput --models resnet18,lenet5 --dataset cifar10 \
        --batch-size 128 --json runs/bench/cifar10.json
    python -m benchmarks.throughput --models lenet5,resnet18 --dataset cifar10,mnist \
        --compute-dtype float32,bfloat16 --budget-s 280 --json runs/bench/gpu.json \
        --markdown runs/bench/gpu.md

For each model this times `trainers.train.train_step` itself (the jitted step the training loop
calls, gathering its batch by index from uint8 data on the device) and, in the same process,
the PyTorch twin from `benchmarks.torch_models` (parameter count checked equal) trained with
the same optimiser (Adam, 1e-3), loss and batch. The two are alternated in rounds so that a
burst of load from other processes hits both; each side's figure is its best round, the round
least disturbed. A large matmul timed in the same run, per compute dtype, gives the device's
peak, against which the step's achieved FLOP/s (from XLA's cost analysis of the train step) is
set.

Nothing here assumes the CPU. JAX runs on its default backend; PyTorch on CUDA when
`torch.cuda.is_available()` (`--torch-device`), with cuDNN's benchmark mode, channels-last
memory format when a short trial finds it faster (`--channels-last`), and `torch.compile` as a
second PyTorch row (`--torch-compile`, on by default when both frameworks run on a GPU:
compiling takes minutes on a CPU; a failure is reported as n/a, not raised). Each side's time
is taken after synchronising its device. `--compute-dtype bfloat16` runs both in bfloat16
(JAX: the project's `compute_dtype` path, float32 weights; PyTorch: autocast); float32 on a GPU
runs TF32 matmuls and convolutions in both unless `--tf32 off`, and the tables say which ran.
The MFU of a bfloat16 row is against the bfloat16 matmul peak, of a float32 row against the
float32 (or TF32) one. Peak memory is the device's own count where it keeps one (PyTorch's
`max_memory_allocated`; JAX's `peak_bytes_in_use`, one counter for the whole process, so read
only for a row that raised it, XLA's buffer assignment otherwise), else the CPU measures.

Several datasets and dtypes run as one plan: every (dtype, dataset, model) row in that order,
then the `torch.compile` rows. With `--budget-s` a row starts only when its estimated time (from
the rows already run) still fits, and the rows that did not are listed as skipped; the JSON
(and `--markdown`) are rewritten after every row, so a run stopped from outside keeps what it
finished.
"""

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

import jax_models
from benchmarks import isa_cap, report, torch_models
from jax_models.complexity import native_forms_flops
from jax_models.errors import UserError
from trainers import train as train_lib
from trainers import xla_options
from trainers.data import DATASETS
from trainers.errors import exit_on_user_error
from trainers.metrics import TrainMetrics
from trainers.settings import COMPUTE_DTYPES

LEARNING_RATE = 1e-3
FLOPS_SOURCE = (
    "XLA cost analysis of the train step (forward, backward, Adam) lowered with the native forms"
)
# Steps of synthetic data the benchmark keeps on the device; each step gathers one batch of it.
DATA_BATCHES = 4
MB = 2**20
# Side of the peak matmul when --peak-size is 0: large enough to fill a GPU's matmul units.
PEAK_SIZE = {"cpu": 2048, "accelerator": 8192}
# Seconds kept back from --budget-s for the matmul peak timed after the rows on an accelerator.
PEAK_RESERVE_S = 10.0


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# The SIMD extensions XLA's, YNNPACK's, Eigen's and oneDNN's CPU kernels pick their code paths
# by (/proc/cpuinfo's spelling): a ratio measured with AVX-512 says little about an AVX2-only CPU.
VECTOR_EXTENSION_PREFIXES = ("sse4", "avx", "fma", "f16c", "amx", "asimd", "sve", "neon")


def cpu_info(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's `key: value` lines of /proc/cpuinfo; empty where there is none."""
    info: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_model() -> str:
    return cpu_info().get("model name") or platform.processor() or "unknown"


def cpu_vector_extensions(info: dict[str, str] | None = None) -> list[str]:
    """The CPU's SIMD extensions, from the `flags` (x86) or `Features` (Arm) line."""
    info = cpu_info() if info is None else info
    flags = (info.get("flags") or info.get("Features") or "").split()
    return sorted(flag for flag in flags if flag.startswith(VECTOR_EXTENSION_PREFIXES))


def cpu_family_model() -> str:
    """`family F model M` (x86): tells CPU generations apart under one marketing name."""
    info = cpu_info()
    if "cpu family" not in info:
        return ""
    return f"family {info['cpu family']} model {info.get('model', '?')}"


def jax_on_accelerator() -> bool:
    return jax.default_backend() != "cpu"


def torch_device(choice: str = "auto") -> torch.device:
    """`cuda` when asked for, or on `auto` when PyTorch sees a GPU; else the CPU."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--torch-device cuda, but this PyTorch sees no GPU (a CPU build?).")
    return torch.device(choice)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device | None = None) -> dict:
    """What the figures depend on: the CPU, the accelerator, the libraries and their flags."""
    device = device or torch_device()
    info = {
        "cpu": cpu_model(),
        "cpu_family_model": cpu_family_model(),
        "cpu_vector_extensions": cpu_vector_extensions(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jax.lib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "jax_backend": jax.default_backend(),
        "jax_device": jax.devices()[0].device_kind,
        "jax_device_count": jax.device_count(),
        "torch_device": str(device),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "isa_switches": {key: os.environ[key] for key in isa_cap.LIBRARY_ENV if key in os.environ},
        # What the JAX step compiles with on this platform (trainers.xla_options).
        "xla_compiler_options": xla_options.compiler_options(jax.default_backend()),
    }
    if device.type == "cuda":
        info |= {
            "gpu": torch.cuda.get_device_name(device),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    return info


def best_seconds(fn, repeats: int) -> float:
    """Fastest of `repeats` timed calls of `fn` (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def repeated(fn, target_s: float = 0.05):
    """`fn` called often enough per timing that launch latency is small against `target_s`."""
    fn()  # the first call pays for compiling and allocating
    start = time.perf_counter()
    fn()
    calls = max(1, min(100, round(target_s / max(time.perf_counter() - start, 1e-9))))

    def many() -> None:
        for _ in range(calls):
            fn()

    return many, calls


class Precision:
    """Which arithmetic float32 and bfloat16 steps run on each framework's device.

    float32 on a GPU runs TF32 matmuls and convolutions unless `tf32` is off (JAX's
    `default_matmul_precision`, PyTorch's fp32 precision flags); elsewhere it is plain float32.
    """

    def __init__(self, choice: str, device: torch.device):
        self.jax_tf32 = choice == "on" or (choice == "auto" and jax.default_backend() == "gpu")
        self.torch_tf32 = choice == "on" or (choice == "auto" and device.type == "cuda")
        self.device = device
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            mode = "tf32" if self.torch_tf32 else "ieee"
            if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
                torch.backends.cuda.matmul.fp32_precision = mode
                torch.backends.cudnn.conv.fp32_precision = mode
            else:
                torch.backends.cuda.matmul.allow_tf32 = self.torch_tf32
                torch.backends.cudnn.allow_tf32 = self.torch_tf32

    def jax_label(self, dtype: str) -> str:
        if dtype != "float32":
            return dtype
        return "tf32" if self.jax_tf32 and jax.default_backend() == "gpu" else "float32"

    def torch_label(self, dtype: str) -> str:
        if dtype != "float32":
            return f"{dtype} autocast"
        return "tf32" if self.torch_tf32 and self.device.type == "cuda" else "float32"

    def jax_context(self, dtype: str):
        """JAX's matmul precision for a float32 step on a GPU; the backend default elsewhere."""
        if dtype != "float32" or jax.default_backend() != "gpu":
            return contextlib.nullcontext()
        return jax.default_matmul_precision("tensorfloat32" if self.jax_tf32 else "highest")


def matmul_peak_gflops(
    size: int | dict[str, int],
    dtype: str = "float32",
    device: torch.device | None = None,
    precision: Precision | None = None,
    repeats: int = 5,
    frameworks: tuple[str, ...] = ("jax", "torch"),
) -> dict[str, float]:
    """GFLOP/s of a size x size matmul in `dtype`, XLA on JAX's default device and PyTorch on
    `device`, each synchronised; the larger of the two is the peak."""
    device = device or torch.device("cpu")
    sizes = size if isinstance(size, dict) else {"jax": size, "torch": size}
    gflops = {}
    if "jax" in frameworks:
        a = jax.random.normal(jax.random.key(0), (sizes["jax"],) * 2, jnp.dtype(dtype))
        with precision.jax_context(dtype) if precision else contextlib.nullcontext():
            matmul = jax.jit(jnp.matmul)
            jax_fn, jax_calls = repeated(lambda: matmul(a, a).block_until_ready())
            gflops["jax"] = 2 * sizes["jax"] ** 3 / (best_seconds(jax_fn, repeats) / jax_calls)
    if "torch" in frameworks:
        generator = torch.Generator(device).manual_seed(0)
        shape = (sizes["torch"],) * 2
        t = torch.randn(shape, generator=generator, device=device, dtype=getattr(torch, dtype))

        def torch_matmul() -> None:
            torch.matmul(t, t)
            synchronize(device)

        torch_fn, torch_calls = repeated(torch_matmul)
        torch_s = best_seconds(torch_fn, repeats) / torch_calls
        gflops["torch"] = 2 * sizes["torch"] ** 3 / torch_s
    return {framework: value / 1e9 for framework, value in gflops.items()}


def device_memory() -> dict | None:
    """The JAX device's allocator statistics, where its backend keeps them (not on the CPU)."""
    try:
        return jax.local_devices()[0].memory_stats() or None
    except Exception:  # backends without the call raise rather than return None
        return None


class JaxSide:
    """The project's own train step on synthetic uint8 data held on the device.

    `train_step` is `trainers.train.train_step` unless another jit of its function is given
    (`benchmarks.step_variants` times two against each other)."""

    def __init__(
        self,
        name: str,
        image_shape: tuple[int, int, int],
        batch_size: int,
        compute_dtype: str = "float32",
        train_step: Callable = train_lib.train_step,
    ):
        self.train_step = train_step
        self.executable = None  # the step as `compile` last compiled it
        self.batch_size = batch_size
        self.compute_dtype = compute_dtype
        self.mesh = train_lib.make_mesh()
        rng = np.random.default_rng(0)
        num = batch_size * DATA_BATCHES
        images = rng.integers(0, 256, (num, *image_shape), dtype=np.uint8)
        labels = rng.integers(0, 10, num).astype(np.int32)
        order = rng.permutation(num).astype(np.int32)
        self.data = tuple(train_lib.put_replicated(a, self.mesh) for a in (images, labels, order))
        self.data_bytes = sum(a.nbytes for a in (images, labels, order))
        jax.block_until_ready(self.data)
        self.memory_before = device_memory()
        self.model = jax_models.create(name, num_classes=10, input_shape=image_shape)
        self.optimizer = train_lib.replicated_adam(self.model, LEARNING_RATE, self.mesh)
        self.model.train()
        self.metrics = train_lib.replicate(TrainMetrics.empty(), self.mesh)
        self.params = jax_models.count_params(self.model)
        self.step = 0

    def _args(self) -> tuple:
        step = jnp.int32(self.step % DATA_BATCHES)
        return (self.model, self.optimizer, self.metrics, *self.data, step)

    def _static(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "mesh": self.mesh,
            "compute_dtype": self.compute_dtype,
        }

    def trace(self):
        """The step traced for this model, data and batch, not yet lowered."""
        return self.train_step.trace(*self._args(), **self._static())

    def compiled(self, traced: Any = None) -> Any:
        """The step as its calls run it, compiled with the platform's options (from `traced`,
        this side's `trace`, where given)."""
        return self.train_step.executable(*self._args(), traced=traced, **self._static())

    def compile(self) -> dict:
        """Compiles the step (the calls that follow reuse it) and reads XLA's analyses."""
        start = time.perf_counter()
        traced = self.trace()
        compiled = self.compiled(traced)
        compile_s = time.perf_counter() - start
        self.executable = compiled  # its optimised HLO, for the diagnostics that read it
        flops = native_forms_flops(traced)  # the same trace, lowered for the native forms
        memory = compiled.memory_analysis()
        peak = (
            memory.argument_size_in_bytes
            + memory.output_size_in_bytes
            + memory.temp_size_in_bytes
            - memory.alias_size_in_bytes
            - self.data_bytes
        )
        return {
            "compile_s": compile_s,
            "step_flops": flops,
            "flops_source": FLOPS_SOURCE,
            "peak_bytes": peak,
        }

    def run(self, steps: int) -> float:
        """Seconds per step over `steps` calls of `train_step`."""
        start = time.perf_counter()
        for _ in range(steps):
            self.metrics = self.train_step(*self._args(), **self._static())
            self.step += 1
        jax.block_until_ready(self.metrics)
        return (time.perf_counter() - start) / steps

    def device_peak_bytes(self) -> int | None:
        """Bytes the device held for this model beyond its data at its highest, where the
        device counts: its peak is one for the whole process, so only a model that raised it
        can be read from it."""
        after = device_memory()
        before = self.memory_before
        if not before or not after or "peak_bytes_in_use" not in after:
            return None
        if after["peak_bytes_in_use"] <= before.get("peak_bytes_in_use", 0):
            return None
        return after["peak_bytes_in_use"] - before.get("bytes_in_use", 0)


class TorchSide:
    """The PyTorch twin, fed the same way: uint8 data on its device indexed per step.

    `channels_last` stores weights and batches NHWC in memory; `compile` trains through
    `torch.compile(model)`; `compute_dtype='bfloat16'` runs the forward pass under autocast.
    """

    def __init__(
        self,
        name: str,
        image_shape: tuple[int, int, int],
        batch_size: int,
        device: torch.device | None = None,
        compute_dtype: str = "float32",
        channels_last: bool = False,
        compile: bool = False,
    ):
        torch.manual_seed(0)
        self.device = device or torch.device("cpu")
        self.batch_size = batch_size
        self.compute_dtype = compute_dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        height, width, channels = image_shape
        rng = np.random.default_rng(0)
        num = batch_size * DATA_BATCHES
        images = rng.integers(0, 256, (num, channels, height, width), dtype=np.uint8)
        self.images = torch.from_numpy(images).to(self.device)
        self.labels = torch.from_numpy(rng.integers(0, 10, num)).to(self.device)
        self.order = torch.from_numpy(rng.permutation(num)).to(self.device)
        self.model = torch_models.create(name, 10, image_shape)
        self.model.to(self.device, memory_format=self.memory_format)
        self.model.train()
        self.forward = torch.compile(self.model, dynamic=False) if compile else self.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        self.params = torch_models.count_params(self.model)
        self.step = 0

    def _autocast(self):
        if self.compute_dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self.compute_dtype))

    def _train_step(self) -> None:
        start = (self.step % DATA_BATCHES) * self.batch_size
        index = self.order[start : start + self.batch_size]
        x = (self.images[index].float() / 255.0).contiguous(memory_format=self.memory_format)
        y = self.labels[index]
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            logits = self.forward(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        self.optimizer.step()
        self.step += 1

    def run(self, steps: int) -> float:
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self._train_step()
        synchronize(self.device)
        return (time.perf_counter() - start) / steps

    def persistent_bytes(self) -> int:
        """Parameters and Adam state."""
        persistent = sum(p.numel() * p.element_size() for p in self.model.parameters())
        return persistent + sum(
            t.numel() * t.element_size()
            for state in self.optimizer.state.values()
            for t in state.values()
            if torch.is_tensor(t)
        )

    def peak_bytes(self) -> int:
        """Parameters and Adam state, plus the most bytes the allocator held during one step
        beyond what was allocated before it (CUDA's own peak counter, else the profiler's)."""
        if self.device.type == "cuda":
            synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._train_step()
            synchronize(self.device)
            during = torch.cuda.max_memory_allocated(self.device) - before
            return self.persistent_bytes() + during
        with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
        ) as profile:
            self._train_step()
        with tempfile.TemporaryDirectory() as directory:
            trace = Path(directory) / "trace.json"
            profile.export_chrome_trace(str(trace))
            events = json.loads(trace.read_text())["traceEvents"]
        allocated = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
        return self.persistent_bytes() + max(allocated, default=0)


def steps_for(seconds_per_step: float, budget_s: float, min_steps: int) -> int:
    return max(min_steps, math.floor(budget_s / max(seconds_per_step, 1e-9)))


@dataclass(frozen=True)
class Unit:
    """One piece of the plan: the JAX and eager PyTorch figures of a row, or its compiled
    PyTorch figures."""

    kind: str  # "eager" | "compile"
    compute_dtype: str
    dataset: str
    model: str

    def describe(self) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "compute_dtype": self.compute_dtype,
            "kind": self.kind,
        }

    def label(self) -> str:
        return f"{self.model} {self.dataset} {self.compute_dtype} {self.kind}"


def plan(
    models: list[str], datasets: list[str], dtypes: list[str], compile_rows: bool
) -> list[Unit]:
    """Every eager row, dtype by dtype and dataset by dataset, then the compiled rows."""
    eager = [Unit("eager", d, s, m) for d in dtypes for s in datasets for m in models]
    compiled = [Unit("compile", u.compute_dtype, u.dataset, u.model) for u in eager]
    return eager + (compiled if compile_rows else [])


class Budget:
    """Starts a unit only when the time it is expected to take still fits."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.perf_counter()
        self.durations: dict[Unit, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return math.inf if self.seconds <= 0 else self.seconds - self.elapsed()

    def estimate(self, unit: Unit) -> float:
        """The same model's last unit of this kind; for a model not yet run, the longest unit
        of the kind so far (the default order runs the cheaper models first); a compiled row
        with nothing to go by, twice its eager row."""
        same_model = [
            s for u, s in self.durations.items() if (u.kind, u.model) == (unit.kind, unit.model)
        ]
        if same_model:
            return same_model[-1]
        of_kind = [s for u, s in self.durations.items() if u.kind == unit.kind]
        if unit.kind == "compile":
            eager = Unit("eager", unit.compute_dtype, unit.dataset, unit.model)
            if eager in self.durations:
                return 2 * self.durations[eager]
        return max(of_kind, default=0.0)

    def fits(self, unit: Unit, reserve_s: float = 0.0) -> bool:
        return self.seconds <= 0 or self.estimate(unit) + reserve_s <= self.left()

    def record(self, unit: Unit, seconds: float) -> None:
        self.durations[unit] = seconds


def pick_torch_side(
    name: str,
    image_shape: tuple[int, int, int],
    batch_size: int,
    compute_dtype: str,
    device: torch.device,
    args: argparse.Namespace,
) -> tuple[TorchSide, float, dict]:
    """The eager twin in the faster memory format, its warm step time and the trial's figures.

    `--channels-last auto` tries both formats on CUDA (cuDNN's NHWC kernels usually win in
    bfloat16) and keeps NCHW elsewhere; `on` and `off` fix it.
    """
    make = lambda channels_last: TorchSide(  # noqa: E731
        name, image_shape, batch_size, device, compute_dtype, channels_last=channels_last
    )
    if args.channels_last == "on" or args.channels_last == "off":
        side = make(args.channels_last == "on")
        return side, side.run(1), {}
    if device.type != "cuda":
        side = make(False)
        return side, side.run(1), {}
    trial = {}
    for channels_last in (False, True):
        side = make(channels_last)
        side.run(2)  # cuDNN's benchmark mode picks its algorithms in the first step
        warm = side.run(1)
        steps = steps_for(warm, args.round_seconds, args.min_steps)
        trial[channels_last] = (side.run(steps), side)
    figures = {
        "torch_layout_trial_s": {
            "channels_last" if k else "nchw": seconds for k, (seconds, _) in trial.items()
        }
    }
    best = min(trial, key=lambda k: trial[k][0])
    seconds, side = trial.pop(best)
    trial.clear()
    free_device_memory(device)
    return side, seconds, figures


def eager_row(
    unit: Unit, args: argparse.Namespace, device: torch.device, precision: Precision
) -> dict:
    """Compiles, warms up, then alternates timed rounds of the JAX and PyTorch steps."""
    name, dtype, batch_size = unit.model, unit.compute_dtype, args.batch_size
    image_shape = DATASETS[unit.dataset].image_shape
    with precision.jax_context(dtype):
        jax_side = JaxSide(name, image_shape, batch_size, dtype)
        torch_side, warm_torch, trial = pick_torch_side(
            name, image_shape, batch_size, dtype, device, args
        )
        if jax_side.params != torch_side.params:
            raise UserError(
                f"The PyTorch twin of {name} has {torch_side.params} parameters, the JAX model "
                f"{jax_side.params}; fix benchmarks/torch_models.py to match jax_models."
            )
        compiled = jax_side.compile()
        # Warm-up: JAX's first call after compiling; PyTorch's first step and the profiled one
        # (it builds its oneDNN kernels then). The warm-up times size the rounds.
        first_call_s = jax_side.run(1)
        torch_peak = torch_side.peak_bytes()
        jax_steps = steps_for(first_call_s, args.round_seconds, args.min_steps)
        torch_steps = steps_for(warm_torch, args.round_seconds, args.min_steps)
        jax_rounds, torch_rounds = [], []
        spent = 0.0
        # Short alternating rounds until both sides have had `seconds` of timing: load from
        # other processes comes in bursts, and many short rounds give each side quiet ones.
        while len(jax_rounds) < args.rounds or spent < 2 * args.seconds:
            jax_rounds.append(jax_side.run(jax_steps))
            torch_rounds.append(torch_side.run(torch_steps))
            spent += jax_rounds[-1] * jax_steps + torch_rounds[-1] * torch_steps
        forward_flops = jax_models.forward_flops(jax_side.model, image_shape)
        device_peak = jax_side.device_peak_bytes()
    jax_ips = batch_size / min(jax_rounds)
    torch_ips = batch_size / min(torch_rounds)
    ratio_per_round = [t / j for j, t in zip(jax_rounds, torch_rounds, strict=True)]
    flops_per_step = compiled["step_flops"]
    return {
        "model": name,
        "dataset": unit.dataset,
        "compute_dtype": dtype,
        "precision": precision.jax_label(dtype),
        "torch_precision": precision.torch_label(dtype),
        "params": jax_side.params,
        "batch_size": batch_size,
        "jax_images_per_s": jax_ips,
        "torch_images_per_s": torch_ips,
        "ratio": jax_ips / torch_ips,
        "ratio_per_round": ratio_per_round,
        "ratio_median": float(np.median(ratio_per_round)),
        "compile_s": compiled["compile_s"],
        "first_call_s": first_call_s,
        "train_step_flops": flops_per_step,
        "flops_source": compiled["flops_source"],
        "forward_flops_per_image": forward_flops,
        "achieved_gflops": flops_per_step / min(jax_rounds) / 1e9,
        "torch_achieved_gflops": flops_per_step / min(torch_rounds) / 1e9,
        "peak_memory_mb": (device_peak if device_peak is not None else compiled["peak_bytes"]) / MB,
        "peak_memory_source": "device" if device_peak is not None else "xla",
        "xla_peak_memory_mb": compiled["peak_bytes"] / MB,
        "torch_peak_memory_mb": torch_peak / MB,
        "torch_peak_memory_source": "device" if device.type == "cuda" else "profiler",
        "torch_channels_last": torch_side.memory_format == torch.channels_last,
        **trial,
        "jax_steps_per_round": jax_steps,
        "torch_steps_per_round": torch_steps,
        "rounds": len(jax_rounds),
        "load_average": load_average(),
    }


def compile_figures(unit: Unit, row: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """`torch.compile`'s figures for an eager row, in the row's memory format; a failure to
    compile or run is reported in `torch_compile_error`, not raised."""
    image_shape = DATASETS[unit.dataset].image_shape
    # Twins share their layers' classes, and dynamo recompiles a class's forward at most a
    # few times before falling back to eager mode: start each compiled row afresh.
    torch._dynamo.reset()
    try:
        side = TorchSide(
            unit.model,
            image_shape,
            args.batch_size,
            device,
            unit.compute_dtype,
            channels_last=row.get("torch_channels_last", False),
            compile=True,
        )
        start = time.perf_counter()
        side.run(1)
        compile_s = time.perf_counter() - start
        warm = side.run(1)
        peak = side.peak_bytes()
        steps = steps_for(warm, args.round_seconds, args.min_steps)
        rounds = []
        while len(rounds) < args.rounds or sum(rounds) * steps < args.seconds:
            rounds.append(side.run(steps))
    except Exception as error:  # dynamo, inductor and their compilers fail in many ways
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
        return {"torch_compile_images_per_s": None, "torch_compile_error": message}
    finally:
        torch._dynamo.reset()
    ips = args.batch_size / min(rounds)
    return {
        "torch_compile_images_per_s": ips,
        "torch_compile_ratio": row["jax_images_per_s"] / ips,
        "torch_compile_s": compile_s,
        "torch_compile_peak_memory_mb": peak / MB,
        "torch_compile_error": None,
    }


def free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def print_table(rows: list[dict], peak: float | None) -> None:
    header = (
        f"{'model':<10} {'jax img/s':>10} {'torch img/s':>12} {'ratio':>6} {'compile s':>10} "
        f"{'GFLOP/s':>8} {'MFU':>6} {'jax MB':>8} {'torch MB':>9}"
    )
    compiled = any("torch_compile_images_per_s" in row for row in rows)
    if compiled:
        header += f" {'compiled img/s':>15}"
    print(header)
    print("-" * len(header))
    for row in rows:
        mfu = f"{row['achieved_gflops'] / peak:.1%}" if peak else "n/a"
        line = (
            f"{row['model']:<10} {row['jax_images_per_s']:>10.1f} "
            f"{row['torch_images_per_s']:>12.1f} {row['ratio']:>6.2f} {row['compile_s']:>10.1f} "
            f"{row['achieved_gflops']:>8.1f} {mfu:>6} "
            f"{row['peak_memory_mb']:>8.0f} {row['torch_peak_memory_mb']:>9.0f}"
        )
        if compiled:
            ips = row.get("torch_compile_images_per_s")
            line += f" {'n/a' if ips is None else f'{ips:.1f}':>15}"
        print(line)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__)
    parser.add_argument("--models", required=True, help="comma-separated jax_models names")
    parser.add_argument(
        "--dataset", default="cifar10", help="sets the image shape; comma-separated for several"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument("--markdown", help="also write the tables as markdown here")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="timed seconds per framework and model"
    )
    parser.add_argument(
        "--round-seconds", type=float, default=1.0, help="target length of one timed round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="fewest alternations of the two")
    parser.add_argument("--min-steps", type=int, default=2, help="fewest steps in a round")
    parser.add_argument(
        "--peak-size",
        type=int,
        default=0,
        help="side of the peak matmul; 0: 2048 on a CPU, 8192 on an accelerator",
    )
    parser.add_argument(
        "--compute-dtype",
        default="float32",
        help=f"comma-separated, of {', '.join(COMPUTE_DTYPES)}: the JAX step's compute dtype "
        "(weights stay float32) and PyTorch's autocast dtype",
    )
    parser.add_argument(
        "--torch-device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if any"
    )
    parser.add_argument(
        "--tf32",
        choices=("auto", "on", "off"),
        default="auto",
        help="TF32 for float32 matmuls and convolutions; auto: on a GPU",
    )
    parser.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default="auto",
        help="PyTorch's memory format; auto: the faster of the two on CUDA, NCHW elsewhere",
    )
    parser.add_argument(
        "--torch-compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="time torch.compile as a second PyTorch row; auto: when JAX and PyTorch both run "
        "on a GPU",
    )
    isa_cap.add_argument(parser)
    parser.add_argument(
        "--budget-s",
        type=float,
        default=0.0,
        help="start no row whose expected time no longer fits in these seconds; 0: no limit",
    )
    return parser.parse_args(argv)


def split_list(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def check_args(args: argparse.Namespace) -> list[str]:
    models = split_list(args.models)
    unknown = [m for m in models if m not in torch_models.TORCH_MODELS]
    if not models or unknown:
        raise UserError(
            f"No PyTorch reference for {', '.join(unknown) or 'an empty list'}; choose "
            f"--models from {', '.join(torch_models.TORCH_MODELS)}."
        )
    datasets = split_list(args.dataset)
    unknown = [d for d in datasets if d not in DATASETS]
    if not datasets or unknown:
        raise UserError(
            f"Unknown dataset {', '.join(unknown) or 'list'!r}; choose from: {', '.join(DATASETS)}."
        )
    dtypes = split_list(args.compute_dtype)
    unknown = [d for d in dtypes if d not in COMPUTE_DTYPES]
    if not dtypes or unknown:
        raise UserError(
            f"Unknown --compute-dtype {', '.join(unknown) or 'list'!r}; choose from: "
            f"{', '.join(COMPUTE_DTYPES)}."
        )
    if (
        min(args.batch_size, args.rounds, args.min_steps) <= 0
        or min(args.seconds, args.round_seconds, args.peak_size, args.budget_s) < 0
    ):
        raise UserError(
            "--batch-size, --rounds and --min-steps must be positive, --seconds, "
            "--round-seconds, --peak-size and --budget-s not negative."
        )
    return models


class Run:
    """The plan's state: its tables, what was skipped or failed, and the JSON it rewrites."""

    def __init__(
        self,
        args: argparse.Namespace,
        argv: list[str] | None,
        device: torch.device,
        ynnpack: isa_cap.YnnpackFlags | None = None,
    ):
        self.args = args
        self.device = device
        self.models = check_args(args)
        self.datasets = split_list(args.dataset)
        self.dtypes = split_list(args.compute_dtype)
        self.precision = Precision(args.tf32, device)
        # auto: where both run on a GPU; compiling takes minutes on a CPU.
        compile_rows = args.torch_compile == "on" or (
            args.torch_compile == "auto" and device.type == "cuda" and jax_on_accelerator()
        )
        self.units = plan(self.models, self.datasets, self.dtypes, compile_rows)
        self.skipped: list[dict] = []
        self.failed: list[dict] = []
        self.rows: dict[tuple[str, str, str], dict] = {}
        self.peaks: dict[str, dict[str, float]] = {}
        self.peak_sizes = {
            framework: args.peak_size or PEAK_SIZE["accelerator" if on_accelerator else "cpu"]
            for framework, on_accelerator in (
                ("jax", jax_on_accelerator()),
                ("torch", device.type != "cpu"),
            )
        }
        self.command = "python -m benchmarks.throughput " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        self.load_before = load_average()
        self.machine = machine(device)
        self.budget = Budget(args.budget_s)
        self.ynnpack = ynnpack
        # The device's peak memory counter is one for the process: time XLA's big matmul after
        # the rows where the device keeps one, so that it does not hide the models' peaks.
        self.peak_after_rows = device_memory() is not None

    def measure_peaks(self, frameworks: tuple[str, ...] = ("jax", "torch")) -> None:
        for dtype in self.dtypes:
            gflops = matmul_peak_gflops(
                self.peak_sizes, dtype, self.device, self.precision, frameworks=frameworks
            )
            old = self.peaks.get(dtype, {})
            self.peaks[dtype] = old | {k: max(v, old.get(k, 0.0)) for k, v in gflops.items()}
        free_device_memory(self.device)

    def peak_of(self, dtype: str) -> float | None:
        return max(self.peaks[dtype].values()) if dtype in self.peaks else None

    def run_unit(self, unit: Unit) -> None:
        key = (unit.compute_dtype, unit.dataset, unit.model)
        start = time.perf_counter()
        if unit.kind == "eager":
            self.rows[key] = eager_row(unit, self.args, self.device, self.precision)
            row = self.rows[key]
            message = (
                f"jax {row['jax_images_per_s']:.1f} img/s, torch "
                f"{row['torch_images_per_s']:.1f} img/s, ratio {row['ratio']:.2f}"
            )
        else:
            self.rows[key] |= compile_figures(unit, self.rows[key], self.args, self.device)
            ips = self.rows[key]["torch_compile_images_per_s"]
            message = (
                f"torch.compile {ips:.1f} img/s"
                if ips is not None
                else f"torch.compile n/a ({self.rows[key]['torch_compile_error']})"
            )
        seconds = time.perf_counter() - start
        self.rows[key]["unit_s" if unit.kind == "eager" else "torch_compile_unit_s"] = seconds
        self.budget.record(unit, seconds)
        print(f"{unit.label()}: {message} ({seconds:.0f} s)", file=sys.stderr, flush=True)

    def run(self) -> dict:
        # The peak is timed before and after the rows, the better kept, so that a burst of load
        # during one timing does not flatter the MFU. Where JAX's device counts peak memory,
        # XLA's matmul waits until the eager rows are done (PyTorch's allocator is its own).
        self.measure_peaks(("torch",) if self.peak_after_rows else ("jax", "torch"))
        reserve = PEAK_RESERVE_S * len(self.dtypes) if self.peak_after_rows else 0.0
        eager = [u for u in self.units if u.kind == "eager"]
        compiled = [u for u in self.units if u.kind == "compile"]
        for index, unit in enumerate(eager):
            self.attempt(unit, reserve)
            self.write(pending=self.units[index + 1 :])
        if self.peak_after_rows:
            self.measure_peaks(("jax",))
        for index, unit in enumerate(compiled):
            self.attempt(unit, 0.0)
            self.write(pending=compiled[index + 1 :])
        if not self.peak_after_rows and self.budget.left() > 0:
            self.measure_peaks()
        return self.write(pending=[], final=True)

    def attempt(self, unit: Unit, reserve: float) -> None:
        """Runs `unit` if its eager row exists and it fits the budget; records why not."""
        key = (unit.compute_dtype, unit.dataset, unit.model)
        if unit.kind == "compile" and key not in self.rows:
            self.skipped.append(unit.describe() | {"reason": "its eager row did not run"})
            return
        if not self.budget.fits(unit, reserve):
            left = max(self.budget.left() - reserve, 0)
            reason = f"budget: ~{self.budget.estimate(unit):.0f} s expected, {left:.0f} s left"
            self.skipped.append(unit.describe() | {"reason": reason})
            print(f"{unit.label()}: skipped, {reason}", file=sys.stderr, flush=True)
            return
        try:
            self.run_unit(unit)
        except UserError:
            raise
        except Exception as error:  # out of memory, a backend's error: report it, go on
            self.failed.append(unit.describe() | {"error": format_error(error)})
            print(f"{unit.label()}: failed, {self.failed[-1]['error']}", file=sys.stderr)
            traceback.print_exc()
        free_device_memory(self.device)

    def tables(self) -> list[dict]:
        tables = []
        for dtype in self.dtypes:
            for dataset in self.datasets:
                rows = [
                    self.rows[(dtype, dataset, m)]
                    for m in self.models
                    if (dtype, dataset, m) in self.rows
                ]
                peak = self.peak_of(dtype)
                for row in rows:
                    row["peak_gflops"] = peak
                    row["mfu"] = None if peak is None else row["achieved_gflops"] / peak
                    row["torch_mfu"] = None if peak is None else row["torch_achieved_gflops"] / peak
                tables.append(
                    {
                        "dataset": dataset,
                        "image_shape": list(DATASETS[dataset].image_shape),
                        "batch_size": self.args.batch_size,
                        "compute_dtype": dtype,
                        "precision": self.precision.jax_label(dtype),
                        "torch_precision": self.precision.torch_label(dtype),
                        "peak_gflops": peak,
                        "matmul_gflops": self.peaks.get(dtype),
                        "models": rows,
                    }
                )
        return tables

    def write(self, pending: list[Unit], final: bool = False) -> dict:
        common = {
            "command": self.command,
            "flops_source": FLOPS_SOURCE,
            "load_average_before": self.load_before,
            "load_average_after": load_average(),
            "machine": self.machine | isa_cap.record(self.ynnpack),
            "torch_device": str(self.device),
            "peak_sizes": self.peak_sizes,
            "budget_s": self.args.budget_s,
            "elapsed_s": self.budget.elapsed(),
            "finished": final,
            "skipped": self.skipped,
            "failed": self.failed,
            "pending": [u.describe() for u in pending],
        }
        tables = self.tables()
        results = tables[0] | common if len(tables) == 1 else common | {"tables": tables}
        out = Path(self.args.json)
        partial = out.with_name(out.name + ".partial")
        partial.write_text(json.dumps(results, indent=2))
        partial.replace(out)
        if self.args.markdown:
            Path(self.args.markdown).write_text(report.render([results], None) + "\n")
        return results


def format_error(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:300] if lines else ''}"


def main(argv: list[str] | None = None) -> dict:
    # JAX takes most of a GPU's memory up front by default; PyTorch shares the device here.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    args = parse_args(argv)
    check_args(args)
    ynnpack = isa_cap.apply(args.max_isa, argv, cpu_vector_extensions())
    device = torch_device(args.torch_device)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
    if jax_on_accelerator() != (device.type != "cpu"):
        print(
            f"warning: JAX runs on {jax.default_backend()}, PyTorch on {device}: the ratios "
            "compare different devices.",
            file=sys.stderr,
        )
    run = Run(args, argv, device, ynnpack)
    results = run.run()
    for table in results.get("tables", [results]):
        if not table["models"]:
            continue
        peak = table["peak_gflops"]
        print(
            f"{table['dataset']} {tuple(table['image_shape'])}, batch {table['batch_size']}, "
            f"{table['precision']}, peak {'n/a' if peak is None else f'{peak:.1f}'} GFLOP/s"
        )
        print_table(table["models"], table["peak_gflops"])
    for unit in results["skipped"]:
        print(
            f"skipped: {unit['model']} {unit['dataset']} {unit['compute_dtype']} "
            f"{unit['kind']} ({unit['reason']})"
        )
    for unit in results["failed"]:
        print(
            f"failed: {unit['model']} {unit['dataset']} {unit['compute_dtype']} "
            f"{unit['kind']} ({unit['error']})"
        )
    return results


if __name__ == "__main__":
    exit_on_user_error(main)
