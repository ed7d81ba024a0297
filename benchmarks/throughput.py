"""Training throughput of the study's models: the project's JAX train step against PyTorch.

    python -m benchmarks.throughput --models resnet18,lenet5 --dataset cifar10 \
        --batch-size 128 --json runs/bench/cifar10.json

For each model this times `trainers.train.train_step` itself (the jitted step the training loop
calls, gathering its batch by index from uint8 data on the device) and, in the same process,
the PyTorch twin from `benchmarks.torch_models` (parameter count checked equal) trained with
the same optimiser (Adam, 1e-3), loss and batch. The two are alternated in rounds so that a
burst of load from other processes hits both; each side's figure is its best round, the round
least disturbed. A large float32 matmul timed in the same run gives the machine's peak, against
which the step's achieved FLOP/s (from XLA's cost analysis of the compiled train step) is set.
"""

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

import jax_models
from benchmarks import torch_models
from jax_models.errors import UserError
from trainers import train as train_lib
from trainers.data import DATASETS
from trainers.errors import exit_on_user_error
from trainers.metrics import TrainMetrics
from trainers.settings import COMPUTE_DTYPES

LEARNING_RATE = 1e-3
# Steps of synthetic data the benchmark keeps on the device; each step gathers one batch of it.
DATA_BATCHES = 4
MB = 2**20


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """What the figures depend on: the CPU, the libraries and the flags they ran with."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jax.lib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "jax_device": jax.devices()[0].device_kind,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def best_seconds(fn, repeats: int) -> float:
    """Fastest of `repeats` timed calls of `fn` (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak_gflops(size: int, repeats: int = 5) -> dict[str, float]:
    """float32 GFLOP/s of a size x size matmul in XLA and in PyTorch; the larger is the peak."""
    flops = 2 * size**3
    a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size), np.float32))
    matmul = jax.jit(jnp.matmul)
    jax_s = best_seconds(lambda: matmul(a, a).block_until_ready(), repeats)
    t = torch.from_numpy(np.array(a))
    torch_s = best_seconds(lambda: torch.matmul(t, t), repeats)
    return {"jax": flops / jax_s / 1e9, "torch": flops / torch_s / 1e9}


class JaxSide:
    """The project's own train step on synthetic uint8 data held on the device."""

    def __init__(
        self,
        name: str,
        image_shape: tuple[int, int, int],
        batch_size: int,
        compute_dtype: str = "float32",
    ):
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

    def compile(self) -> dict:
        """Compiles the step (the calls that follow reuse it) and reads XLA's analyses."""
        start = time.perf_counter()
        compiled = train_lib.train_step.lower(*self._args(), **self._static()).compile()
        compile_s = time.perf_counter() - start
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        memory = compiled.memory_analysis()
        peak = (
            memory.argument_size_in_bytes
            + memory.output_size_in_bytes
            + memory.temp_size_in_bytes
            - memory.alias_size_in_bytes
            - self.data_bytes
        )
        return {"compile_s": compile_s, "step_flops": float(cost["flops"]), "peak_bytes": peak}

    def run(self, steps: int) -> float:
        """Seconds per step over `steps` calls of `train_step`."""
        start = time.perf_counter()
        for _ in range(steps):
            self.metrics = train_lib.train_step(*self._args(), **self._static())
            self.step += 1
        jax.block_until_ready(self.metrics)
        return (time.perf_counter() - start) / steps


class TorchSide:
    """The PyTorch twin in eager mode, fed the same way: uint8 data indexed per step."""

    def __init__(self, name: str, image_shape: tuple[int, int, int], batch_size: int):
        torch.manual_seed(0)
        self.batch_size = batch_size
        height, width, channels = image_shape
        rng = np.random.default_rng(0)
        num = batch_size * DATA_BATCHES
        self.images = torch.from_numpy(
            rng.integers(0, 256, (num, channels, height, width), dtype=np.uint8)
        )
        self.labels = torch.from_numpy(rng.integers(0, 10, num))
        self.order = torch.from_numpy(rng.permutation(num))
        self.model = torch_models.create(name, 10, image_shape)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        self.params = torch_models.count_params(self.model)
        self.step = 0

    def _train_step(self) -> None:
        start = (self.step % DATA_BATCHES) * self.batch_size
        index = self.order[start : start + self.batch_size]
        x = self.images[index].float() / 255.0
        y = self.labels[index]
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        self.optimizer.step()
        self.step += 1

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self._train_step()
        return (time.perf_counter() - start) / steps

    def peak_bytes(self) -> int:
        """Parameters and Adam state, plus the most bytes the allocator held during one step."""
        with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
        ) as profile:
            self._train_step()
        with tempfile.TemporaryDirectory() as directory:
            trace = Path(directory) / "trace.json"
            profile.export_chrome_trace(str(trace))
            events = json.loads(trace.read_text())["traceEvents"]
        allocated = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
        persistent = sum(p.numel() * p.element_size() for p in self.model.parameters())
        persistent += sum(
            t.numel() * t.element_size()
            for state in self.optimizer.state.values()
            for t in state.values()
            if torch.is_tensor(t)
        )
        return persistent + max(allocated, default=0)


def steps_for(seconds_per_step: float, budget_s: float, min_steps: int) -> int:
    return max(min_steps, math.floor(budget_s / max(seconds_per_step, 1e-9)))


def bench_model(
    name: str, image_shape: tuple[int, int, int], batch_size: int, args: argparse.Namespace
) -> dict:
    """Compiles, warms up, then alternates timed rounds of the JAX and PyTorch steps."""
    jax_side = JaxSide(name, image_shape, batch_size, args.compute_dtype)
    torch_side = TorchSide(name, image_shape, batch_size)
    if jax_side.params != torch_side.params:
        raise UserError(
            f"The PyTorch twin of {name} has {torch_side.params} parameters, the JAX model "
            f"{jax_side.params}; fix benchmarks/torch_models.py to match jax_models."
        )
    compiled = jax_side.compile()
    # Warm-up: JAX's first call after compiling; PyTorch's first step and the profiled one
    # (it builds its oneDNN kernels then). The warm-up times size the rounds.
    first_call_s = jax_side.run(1)
    warm_torch = torch_side.run(1)
    torch_peak = torch_side.peak_bytes()
    jax_steps = steps_for(first_call_s, args.round_seconds, args.min_steps)
    torch_steps = steps_for(warm_torch, args.round_seconds, args.min_steps)
    jax_rounds, torch_rounds = [], []
    spent = 0.0
    # Short alternating rounds until both sides have had `seconds` of timing: load from other
    # processes comes in bursts, and many short rounds give each side some quiet ones.
    while len(jax_rounds) < args.rounds or spent < 2 * args.seconds:
        jax_rounds.append(jax_side.run(jax_steps))
        torch_rounds.append(torch_side.run(torch_steps))
        spent += jax_rounds[-1] * jax_steps + torch_rounds[-1] * torch_steps
    jax_ips = batch_size / min(jax_rounds)
    torch_ips = batch_size / min(torch_rounds)
    ratio_per_round = [t / j for j, t in zip(jax_rounds, torch_rounds, strict=True)]
    flops_per_step = compiled["step_flops"]
    return {
        "model": name,
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
        "forward_flops_per_image": jax_models.forward_flops(jax_side.model, image_shape),
        "achieved_gflops": flops_per_step / min(jax_rounds) / 1e9,
        "torch_achieved_gflops": flops_per_step / min(torch_rounds) / 1e9,
        "peak_memory_mb": compiled["peak_bytes"] / MB,
        "torch_peak_memory_mb": torch_peak / MB,
        "jax_steps_per_round": jax_steps,
        "torch_steps_per_round": torch_steps,
        "rounds": len(jax_rounds),
        "load_average": load_average(),
    }


def print_table(rows: list[dict], peak: float) -> None:
    header = (
        f"{'model':<10} {'jax img/s':>10} {'torch img/s':>12} {'ratio':>6} {'compile s':>10} "
        f"{'GFLOP/s':>8} {'MFU':>6} {'jax MB':>8} {'torch MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['model']:<10} {row['jax_images_per_s']:>10.1f} "
            f"{row['torch_images_per_s']:>12.1f} {row['ratio']:>6.2f} {row['compile_s']:>10.1f} "
            f"{row['achieved_gflops']:>8.1f} {row['achieved_gflops'] / peak:>6.1%} "
            f"{row['peak_memory_mb']:>8.0f} {row['torch_peak_memory_mb']:>9.0f}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__)
    parser.add_argument("--models", required=True, help="comma-separated jax_models names")
    parser.add_argument("--dataset", default="cifar10", help="sets the image shape")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="timed seconds per framework and model"
    )
    parser.add_argument(
        "--round-seconds", type=float, default=1.0, help="target length of one timed round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="fewest alternations of the two")
    parser.add_argument("--min-steps", type=int, default=2, help="fewest steps in a round")
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the peak matmul")
    parser.add_argument(
        "--compute-dtype",
        choices=COMPUTE_DTYPES,
        default="float32",
        help="the JAX step's compute dtype (weights stay float32); PyTorch stays float32",
    )
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> list[str]:
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in torch_models.TORCH_MODELS]
    if not models or unknown:
        raise UserError(
            f"No PyTorch reference for {', '.join(unknown) or 'an empty list'}; choose "
            f"--models from {', '.join(torch_models.TORCH_MODELS)}."
        )
    if args.dataset not in DATASETS:
        raise UserError(f"Unknown dataset {args.dataset!r}; choose one of: {', '.join(DATASETS)}.")
    if (
        min(args.batch_size, args.rounds, args.min_steps) <= 0
        or min(args.seconds, args.round_seconds) < 0
    ):
        raise UserError(
            "--batch-size, --rounds and --min-steps must be positive, --seconds and "
            "--round-seconds not negative."
        )
    return models


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    models = check_args(args)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_shape = DATASETS[args.dataset].image_shape
    load_before = load_average()
    peak = matmul_peak_gflops(args.peak_size)
    rows = []
    for name in models:
        rows.append(bench_model(name, image_shape, args.batch_size, args))
        print(
            f"{name}: jax {rows[-1]['jax_images_per_s']:.1f} img/s, torch "
            f"{rows[-1]['torch_images_per_s']:.1f} img/s, ratio {rows[-1]['ratio']:.2f}",
            file=sys.stderr,
            flush=True,
        )
    # The peak is timed before and after the models, and the better of the two kept, so that a
    # burst of load during one timing does not flatter the MFU.
    for framework, gflops in matmul_peak_gflops(args.peak_size).items():
        peak[framework] = max(peak[framework], gflops)
    peak_gflops = max(peak.values())
    for row in rows:
        row["peak_gflops"] = peak_gflops
        row["mfu"] = row["achieved_gflops"] / peak_gflops
    results = {
        "command": "python -m benchmarks.throughput "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "dataset": args.dataset,
        "image_shape": list(image_shape),
        "batch_size": args.batch_size,
        "compute_dtype": args.compute_dtype,
        "peak_gflops": peak_gflops,
        "matmul_gflops": peak,
        "flops_source": "XLA cost analysis of the compiled train step (forward, backward, Adam)",
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "machine": machine(),
        "models": rows,
    }
    out.write_text(json.dumps(results, indent=2))
    print(f"{args.dataset} {image_shape}, batch {args.batch_size}, peak {peak_gflops:.1f} GFLOP/s")
    print_table(rows, peak_gflops)
    return results


if __name__ == "__main__":
    exit_on_user_error(main)
