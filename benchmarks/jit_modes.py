"""The train step under `nnx.jit`'s graph mode against its tree mode (`graph=False`).

    python -m benchmarks.jit_modes --models lenet5,resnet18 --dataset cifar10 \
        --json runs/bench/jit_modes_cifar10.json

`trainers.train.train_step` runs in tree mode: its modules cross the jit boundary as pytrees
instead of through graph mode's Python traversal of every Variable on each call. Both modes
trace the same function into the same program, so the difference is the Python time per call.
This times the project's own step function wrapped both ways (same model, data, batch and
donation) in alternating rounds in one process, as `benchmarks.throughput` does, and reports
each mode's best round and the median of the per-round ratios.
"""

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from flax import nnx

import jax_models
from benchmarks.throughput import JaxSide, alternate, load_average, machine
from jax_models.errors import UserError
from trainers import train as train_lib
from trainers.data import DATASETS
from trainers.errors import exit_on_user_error

MODES = {"graph": True, "tree": False}


def jitted_step(graph: bool) -> Callable:
    """`trainers.train.train_step`'s function under `nnx.jit` in graph or tree mode, with the
    same static and donated arguments."""
    return nnx.jit(
        train_lib.train_step.fun,
        static_argnames=train_lib.TRAIN_STEP_STATIC,
        donate_argnames=train_lib.TRAIN_STEP_DONATED,
        graph=graph,
    )


def compare(name: str, shape: tuple[int, int, int], args: argparse.Namespace) -> dict:
    sides = {
        mode: JaxSide(name, shape, args.batch_size, train_step=jitted_step(graph))
        for mode, graph in reversed(MODES.items())  # rounds sized by tree mode's step
    }
    seconds = alternate(sides, args.rounds, args.round_seconds)
    graph, tree = seconds["graph"], seconds["tree"]
    return {
        "model": name,
        "image_shape": list(shape),
        "batch_size": args.batch_size,
        "graph_ms_per_step": round(float(graph.min()) * 1e3, 3),
        "tree_ms_per_step": round(float(tree.min()) * 1e3, 3),
        "graph_over_tree_per_round": [round(float(r), 3) for r in graph / tree],
        "median_graph_over_tree": round(float(np.median(graph / tree)), 3),
        "load_average": load_average(),
    }


def markdown(results: dict) -> str:
    lines = [
        "| model | dataset | graph mode ms/step | tree mode ms/step | median round ratio | load |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in results["models"]:
        lines.append(
            f"| {row['model']} | {results['dataset']} | {row['graph_ms_per_step']} | "
            f"{row['tree_ms_per_step']} | {row['median_graph_over_tree']} | "
            f"{row['load_average'][0]} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="lenet5,resnet18")
    parser.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--round-seconds", type=float, default=1.0)
    parser.add_argument("--json", type=Path, help="write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.batch_size < 1 or args.rounds < 1:
        raise UserError("--batch-size and --rounds must be at least 1.")
    names = [name for name in args.models.split(",") if name]
    for name in names:
        jax_models.check_name(name)
    shape = DATASETS[args.dataset].image_shape
    results = {"machine": machine(), "dataset": args.dataset, "models": []}
    for name in names:
        results["models"].append(compare(name, shape, args))
        print(json.dumps(results["models"][-1]), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    exit_on_user_error(main)
