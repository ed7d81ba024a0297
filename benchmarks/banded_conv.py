"""XLA's own narrow convolutions against the banded matmuls of `jax_models.cpu_forms`.

    python -m benchmarks.banded_conv --models lenet5 --dataset cifar10 \
        --json runs/bench/banded_conv_cifar10.json

On the CPU, `cpu_forms.tap_sum_conv` computes every stride-1 dense convolution of at most
`BANDED_MAX_IN_FEATURES` input and `BANDED_MAX_OUT_FEATURES` output features as one matmul
(`banded_matmul_conv`): XLA:CPU leaves such narrow convolutions to Eigen. This traces the
project's train step twice, once with no convolution narrow enough (XLA's convolutions
everywhere) and once as shipped, counts the convolutions Eigen runs in each compiled program,
and times both in alternating rounds in one process: each variant's best round, the median of
the per-round ratios and XLA's memory for the step.
"""

import argparse

from benchmarks import conv_routing, step_variants
from benchmarks.throughput import load_average
from jax_models import cpu_forms
from trainers.errors import exit_on_user_error


def variant(name: str, shape: tuple[int, int, int], batch_size: int, max_in_features: int):
    """A JaxSide whose step is traced and compiled with `max_in_features`, its memory and the
    number of its convolutions that Eigen runs."""
    side, peak, hlo = step_variants.traced_with(
        name, shape, batch_size, cpu_forms, BANDED_MAX_IN_FEATURES=max_in_features
    )
    eigen = sum(conv.route == "Eigen" for conv in conv_routing.convolutions(hlo))
    return side, peak, eigen


def compare(name: str, shape: tuple[int, int, int], args: argparse.Namespace) -> dict:
    limits = {"xla": 0, "banded": cpu_forms.BANDED_MAX_IN_FEATURES}
    built = {key: variant(name, shape, args.batch_size, limit) for key, limit in limits.items()}
    sides = {key: b[0] for key, b in built.items()}
    return {
        "model": name,
        "image_shape": list(shape),
        "batch_size": args.batch_size,
        "max_in_features": limits["banded"],
        "max_out_features": cpu_forms.BANDED_MAX_OUT_FEATURES,
        "band_columns": cpu_forms.BAND_COLUMNS,
        "xla_eigen_convolutions": built["xla"][2],
        "banded_eigen_convolutions": built["banded"][2],
        **step_variants.timed(sides, args, over=("xla", "banded")),
        "xla_mb": round(built["xla"][1] / 2**20, 1),
        "banded_mb": round(built["banded"][1] / 2**20, 1),
        "load_average": load_average(),
    }


COLUMNS: list[step_variants.Column] = [
    (
        "Eigen convolutions, XLA / banded",
        lambda row: f"{row['xla_eigen_convolutions']} / {row['banded_eigen_convolutions']}",
    ),
    ("XLA ms/step", lambda row: row["xla_ms_per_step"]),
    ("banded ms/step", lambda row: row["banded_ms_per_step"]),
    ("median round ratio", lambda row: row["median_xla_over_banded"]),
    ("XLA MB", lambda row: row["xla_mb"]),
    ("banded MB", lambda row: row["banded_mb"]),
]


def main(argv: list[str] | None = None) -> dict:
    description = __doc__.split("\n\n")[0]
    args = step_variants.parse_args(argv, description, models="lenet5", rounds=8)
    return step_variants.run(args, compare, COLUMNS)


if __name__ == "__main__":
    exit_on_user_error(main)
