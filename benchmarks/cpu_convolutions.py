"""The train step with XLA:CPU's default YNNPACK convolutions against the project's compiler
options (`trainers.xla_options`: Eigen's convolutions).

    python -m benchmarks.cpu_convolutions --models resnet18,vgg16 --dataset cifar10 \
        --json runs/bench/cpu_convolutions_cifar10.json

The YNNPACK in jaxlib 0.10 runs a convolution with 64 output channels on a map up to 32
pixels wide as one task, on one core; the project compiles its steps on the CPU with YNNPACK's
convolutions switched off, leaving them to Eigen, which splits them over output pixels. This
compiles the project's train step both ways, counts the convolutions YNNPACK and Eigen run in
each program, and times both in alternating rounds in one process: each variant's best round,
the median of the per-round ratios and XLA's memory for the step.
"""

import argparse

import jax

from benchmarks import conv_routing, step_variants
from benchmarks.throughput import JaxSide, load_average
from jax_models.errors import UserError
from trainers import xla_options
from trainers.errors import exit_on_user_error

VARIANTS = {"ynnpack": lambda platform: {}, "eigen": xla_options.compiler_options}


def variant(
    name: str, shape: tuple[int, int, int], batch_size: int, key: str
) -> tuple[JaxSide, int, list[str]]:
    """A JaxSide whose step compiles with `VARIANTS[key]`, its memory and its convolutions'
    routes."""
    side = JaxSide(
        name, shape, batch_size, train_step=step_variants.jitted_step(options=VARIANTS[key])
    )
    compiled = side.compile()
    routes = [conv.route for conv in conv_routing.convolutions(side.executable.as_text())]
    return side, compiled["peak_bytes"], routes


def compare(name: str, shape: tuple[int, int, int], args: argparse.Namespace) -> dict:
    built = {key: variant(name, shape, args.batch_size, key) for key in VARIANTS}
    sides = {key: b[0] for key, b in built.items()}
    return {
        "model": name,
        "image_shape": list(shape),
        "batch_size": args.batch_size,
        "compiler_options": xla_options.compiler_options("cpu"),
        **{
            f"{key}_{route.lower()}_convolutions": b[2].count(route)
            for key, b in built.items()
            for route in ("YNNPACK", "Eigen")
        },
        **step_variants.timed(sides, args, over=("ynnpack", "eigen")),
        **{f"{key}_mb": round(b[1] / 2**20, 1) for key, b in built.items()},
        "load_average": load_average(),
    }


COLUMNS: list[step_variants.Column] = [
    (
        "YNNPACK / Eigen convolutions, XLA's default",
        lambda row: f"{row['ynnpack_ynnpack_convolutions']} / {row['ynnpack_eigen_convolutions']}",
    ),
    (
        "the project's",
        lambda row: f"{row['eigen_ynnpack_convolutions']} / {row['eigen_eigen_convolutions']}",
    ),
    ("default ms/step", lambda row: row["ynnpack_ms_per_step"]),
    ("project's ms/step", lambda row: row["eigen_ms_per_step"]),
    ("median round ratio", lambda row: row["median_ynnpack_over_eigen"]),
    ("default MB", lambda row: row["ynnpack_mb"]),
    ("project's MB", lambda row: row["eigen_mb"]),
]


def main(argv: list[str] | None = None) -> dict:
    description = __doc__.split("\n\n")[0]
    args = step_variants.parse_args(argv, description, models="resnet18", rounds=4)
    if not xla_options.compiler_options(jax.default_backend()):
        raise UserError(
            "The project's steps compile with XLA's defaults here (not a CPU, or XLA_FLAGS sets "
            f"--{xla_options.YNN_FUSION_FLAG}): nothing to compare."
        )
    return step_variants.run(args, compare, COLUMNS)


if __name__ == "__main__":
    exit_on_user_error(main)
