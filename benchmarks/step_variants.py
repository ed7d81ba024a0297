"""The harness of the benchmarks that time two variants of the project's JAX train step against
each other (`benchmarks.jit_modes`, `benchmarks.banded_conv`, `benchmarks.cpu_convolutions`):
alternating rounds in one process, the timings they report, the command line they share
(models, input shape, batch, rounds, JSON) and their table."""

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

import jax_models
from benchmarks import isa_cap
from benchmarks.throughput import JaxSide, cpu_vector_extensions, machine
from jax_models.errors import UserError
from trainers import train as train_lib
from trainers import xla_options
from trainers.data import DATASETS


def jitted_step(
    graph: bool = False, options: Callable[[str], dict[str, str]] = xla_options.compiler_options
) -> Callable:
    """A fresh jit of `trainers.train.train_step`'s function, with its static and donated
    arguments, in graph or tree mode, compiled with `options` (the project's by default): a
    variant traced apart from the project's own jit."""
    return xla_options.jit(
        train_lib.train_step.fun,
        static_argnames=train_lib.TRAIN_STEP_STATIC,
        donate_argnames=train_lib.TRAIN_STEP_DONATED,
        options=options,
        graph=graph,
    )


def traced_with(
    name: str, shape: tuple[int, int, int], batch_size: int, module: ModuleType, **settings
) -> tuple[JaxSide, int, str]:
    """A JaxSide whose step is traced and compiled with `module`'s constants set to `settings`
    (the CPU forms read theirs when the step is traced, so each variant gets its own jit of the
    step function, traced here; the constants are restored after), its memory in bytes and its
    compiled program's text."""
    shipped = {key: getattr(module, key) for key in settings}
    for key, value in settings.items():
        setattr(module, key, value)
    try:
        side = JaxSide(name, shape, batch_size, train_step=jitted_step())
        side.run(2)  # traces and compiles with these settings; later calls reuse it
        return side, side.compile()["peak_bytes"], side.executable.as_text()
    finally:
        for key, value in shipped.items():
            setattr(module, key, value)


def alternate(
    sides: dict[str, JaxSide], rounds: int, round_seconds: float
) -> dict[str, np.ndarray]:
    """Seconds per step of each variant, per round, the variants' order reversed every other
    round so that a burst of load falls on all of them. Each side is compiled and warmed
    first; a round is about `round_seconds` of the first variant."""
    for side in sides.values():
        side.run(2)  # compiles, then one warm step
    steps = max(1, round(round_seconds / next(iter(sides.values())).run(1)))
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(rounds):
        for name in list(sides) if index % 2 == 0 else list(reversed(sides)):
            seconds[name].append(sides[name].run(steps))
    return {name: np.array(values) for name, values in seconds.items()}


def timed(
    sides: dict[str, JaxSide], args: argparse.Namespace, over: tuple[str, str]
) -> dict[str, float | list[float]]:
    """The variants timed in `alternate`'s rounds: each one's best round in ms per step, and
    the `over` pair's ratio of step times per round and its median (above 1: the second is
    faster)."""
    seconds = alternate(sides, args.rounds, args.round_seconds)
    numerator, denominator = over
    ratios = seconds[numerator] / seconds[denominator]
    return {
        **{f"{name}_ms_per_step": round(float(s.min()) * 1e3, 3) for name, s in seconds.items()},
        f"{numerator}_over_{denominator}_per_round": [round(float(r), 3) for r in ratios],
        f"median_{numerator}_over_{denominator}": round(float(np.median(ratios)), 3),
    }


def parse_args(
    argv: list[str] | None, description: str, models: str, rounds: int
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models", default=models)
    parser.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--round-seconds", type=float, default=1.0)
    parser.add_argument("--json", type=Path, help="write the results here")
    isa_cap.add_argument(parser)
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.rounds < 1:
        raise UserError("--batch-size and --rounds must be at least 1.")
    for name in args.models.split(","):
        jax_models.check_name(name)
    args.ynnpack = isa_cap.apply(args.max_isa, argv, cpu_vector_extensions())
    return args


# A column of a benchmark's table: its header and the cell a result row gives it.
Column = tuple[str, Callable[[dict], object]]


def markdown(results: dict, columns: Sequence[Column]) -> str:
    """The results as a table: model and dataset, the benchmark's `columns`, and the 1-minute
    load average each model was measured under."""
    headers = ["model", "dataset", *(header for header, _ in columns), "load"]
    lines = ["| " + " | ".join(headers) + " |", "|---|---|" + "---:|" * (len(columns) + 1)]
    for row in results["models"]:
        cells = [row["model"], results["dataset"], *(cell(row) for _, cell in columns)]
        lines.append("| " + " | ".join(map(str, [*cells, row["load_average"][0]])) + " |")
    return "\n".join(lines)


def run(
    args: argparse.Namespace,
    compare: Callable[[str, tuple[int, int, int], argparse.Namespace], dict],
    columns: Sequence[Column],
) -> dict:
    """`compare` for each model at the dataset's input shape; the JSON is rewritten after each
    model, so a run stopped from outside keeps what it finished. Prints the table."""
    shape = DATASETS[args.dataset].image_shape
    results = {
        "machine": machine() | isa_cap.record(args.ynnpack),
        "dataset": args.dataset,
        "models": [],
    }
    for name in args.models.split(","):
        results["models"].append(compare(name, shape, args))
        print(json.dumps(results["models"][-1]), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results, columns))
    return results
