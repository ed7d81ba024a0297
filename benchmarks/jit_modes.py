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

from benchmarks import step_variants
from benchmarks.throughput import JaxSide, load_average
from trainers.errors import exit_on_user_error

MODES = {"graph": True, "tree": False}


def compare(name: str, shape: tuple[int, int, int], args: argparse.Namespace) -> dict:
    sides = {
        mode: JaxSide(name, shape, args.batch_size, train_step=step_variants.jitted_step(graph))
        for mode, graph in reversed(MODES.items())  # rounds sized by tree mode's step
    }
    return {
        "model": name,
        "image_shape": list(shape),
        "batch_size": args.batch_size,
        **step_variants.timed(sides, args, over=("graph", "tree")),
        "load_average": load_average(),
    }


COLUMNS: list[step_variants.Column] = [
    ("graph mode ms/step", lambda row: row["graph_ms_per_step"]),
    ("tree mode ms/step", lambda row: row["tree_ms_per_step"]),
    ("median round ratio", lambda row: row["median_graph_over_tree"]),
]


def main(argv: list[str] | None = None) -> dict:
    description = __doc__.split("\n\n")[0]
    args = step_variants.parse_args(argv, description, models="lenet5,resnet18", rounds=8)
    return step_variants.run(args, compare, COLUMNS)


if __name__ == "__main__":
    exit_on_user_error(main)
