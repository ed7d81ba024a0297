"""XLA:CPU's own kernel gradients against the tap-matmul ones of `jax_models.cpu_forms`.

    python -m benchmarks.kernel_gradient --models resnet18,senet18,vgg16,googlenet \
        --dataset cifar10 --json runs/bench/kernel_gradient_cifar10.json

On the CPU, `cpu_forms.tap_sum_conv` gives every stride-1 'SAME' dense convolution whose input
has at least `TAP_KERNEL_GRADIENT_MIN_BYTES` a kernel gradient of one matmul per kernel tap
(`tap_kernel_gradient_conv`) instead of XLA's convolution over the whole map. This traces the
project's train step twice, once with that threshold out of reach (XLA's kernel gradients
everywhere) and once as shipped, counts the kernel-gradient convolutions left in each compiled
program, and times both in alternating rounds in one process: each variant's best round, the
median of the per-round ratios and XLA's memory for the step.
"""

import argparse

from benchmarks import conv_routing, step_variants
from benchmarks.throughput import load_average
from jax_models import cpu_forms
from trainers.errors import exit_on_user_error

NEVER = 1 << 62  # bytes no input reaches


def variant(name: str, shape: tuple[int, int, int], batch_size: int, threshold: int) -> tuple:
    """A JaxSide whose step is traced and compiled with `threshold`, its memory and its count
    of kernel-gradient convolutions."""
    side, peak, hlo = step_variants.traced_with(
        name, shape, batch_size, cpu_forms, TAP_KERNEL_GRADIENT_MIN_BYTES=threshold
    )
    found = conv_routing.convolutions(hlo)
    kernel_gradients = sum(conv.role == "kernel gradient" for conv in found)
    return side, peak, kernel_gradients


def compare(name: str, shape: tuple[int, int, int], args: argparse.Namespace) -> dict:
    thresholds = {"xla": NEVER, "taps": cpu_forms.TAP_KERNEL_GRADIENT_MIN_BYTES}
    built = {key: variant(name, shape, args.batch_size, t) for key, t in thresholds.items()}
    sides = {key: b[0] for key, b in built.items()}
    return {
        "model": name,
        "image_shape": list(shape),
        "batch_size": args.batch_size,
        "min_bytes": thresholds["taps"],
        "xla_kernel_gradient_convolutions": built["xla"][2],
        "taps_kernel_gradient_convolutions": built["taps"][2],
        **step_variants.timed(sides, args, over=("xla", "taps")),
        "xla_mb": round(built["xla"][1] / 2**20),
        "taps_mb": round(built["taps"][1] / 2**20),
        "load_average": load_average(),
    }


COLUMNS: list[step_variants.Column] = [
    (
        "kernel-gradient convolutions, XLA / taps",
        lambda row: (
            f"{row['xla_kernel_gradient_convolutions']} / "
            f"{row['taps_kernel_gradient_convolutions']}"
        ),
    ),
    ("XLA ms/step", lambda row: row["xla_ms_per_step"]),
    ("taps ms/step", lambda row: row["taps_ms_per_step"]),
    ("median round ratio", lambda row: row["median_xla_over_taps"]),
    ("XLA MB", lambda row: row["xla_mb"]),
    ("taps MB", lambda row: row["taps_mb"]),
]


def main(argv: list[str] | None = None) -> dict:
    description = __doc__.split("\n\n")[0]
    args = step_variants.parse_args(
        argv, description, models="resnet18,senet18,vgg16,googlenet", rounds=4
    )
    return step_variants.run(args, compare, COLUMNS)


if __name__ == "__main__":
    exit_on_user_error(main)
