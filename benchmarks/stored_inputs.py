"""Native convolutions whose inputs XLA fuses into their kernel gradients' copies, against the
same convolutions with their inputs stored once (`jax_models.cpu_forms.stored_once`).

    python -m benchmarks.stored_inputs --models resnet18,senet18 --dataset cifar10 \
        --json runs/bench/stored_inputs_cifar10.json

XLA:CPU feeds each kernel-gradient convolution a copy of the layer's input with the batch axis
innermost, and fuses the elementwise chain that computes that input (BatchNorm, residual sum,
ReLU) into the copy, so that the copy re-reads every array of the chain element by element.
`cpu_forms.tap_sum_conv` divides a native convolution's input by a one XLA cannot fold, which
makes XLA store the input once and the copy read it. This traces the project's train step twice,
once with `STORE_NATIVE_INPUTS` off and once as shipped, counts the kernel-gradient
convolutions and the arrays the instructions computing their inputs read in each compiled
program, and times both in alternating rounds in one process: each variant's best round, the
median of the per-round ratios and XLA's memory for the step.
"""

import argparse

from benchmarks import conv_routing, step_variants
from benchmarks.throughput import load_average
from jax_models import cpu_forms
from trainers.errors import exit_on_user_error


def kernel_gradient_input_reads(hlo: str) -> tuple[int, int]:
    """The kernel-gradient convolutions of an optimised CPU program, and how many arrays the
    instructions computing their inputs read between them (a stored input: one each)."""
    producers = conv_routing.instructions(conv_routing.parse_computations(hlo))
    found = [c for c in conv_routing.convolutions(hlo) if c.role == "kernel gradient"]
    reads = 0
    for conv in found:
        producer = producers[conv.lhs_name]
        fused = producer.group(4) == "fusion"
        reads += len(set(conv_routing.operands(producer.group(5)))) if fused else 1
    return len(found), reads


def variant(name: str, shape: tuple[int, int, int], batch_size: int, stored: bool):
    """A JaxSide whose step is traced and compiled with or without stored inputs, its memory,
    and its kernel gradients and the arrays their inputs' instructions read."""
    side, peak, hlo = step_variants.traced_with(
        name, shape, batch_size, cpu_forms, STORE_NATIVE_INPUTS=stored
    )
    return side, peak, kernel_gradient_input_reads(hlo)


def compare(name: str, shape: tuple[int, int, int], args: argparse.Namespace) -> dict:
    built = {
        key: variant(name, shape, args.batch_size, key == "stored") for key in ("fused", "stored")
    }
    sides = {key: b[0] for key, b in built.items()}
    return {
        "model": name,
        "image_shape": list(shape),
        "batch_size": args.batch_size,
        "kernel_gradients": built["stored"][2][0],
        "fused_input_reads": built["fused"][2][1],
        "stored_input_reads": built["stored"][2][1],
        **step_variants.timed(sides, args, over=("fused", "stored")),
        "fused_mb": round(built["fused"][1] / 2**20, 1),
        "stored_mb": round(built["stored"][1] / 2**20, 1),
        "load_average": load_average(),
    }


COLUMNS: list[step_variants.Column] = [
    ("kernel gradients", lambda row: row["kernel_gradients"]),
    (
        "arrays their inputs read, fused / stored",
        lambda row: f"{row['fused_input_reads']} / {row['stored_input_reads']}",
    ),
    ("fused ms/step", lambda row: row["fused_ms_per_step"]),
    ("stored ms/step", lambda row: row["stored_ms_per_step"]),
    ("median round ratio", lambda row: row["median_fused_over_stored"]),
    ("fused MB", lambda row: row["fused_mb"]),
    ("stored MB", lambda row: row["stored_mb"]),
]


def main(argv: list[str] | None = None) -> dict:
    description = __doc__.split("\n\n")[0]
    args = step_variants.parse_args(argv, description, models="resnet18", rounds=4)
    return step_variants.run(args, compare, COLUMNS)


if __name__ == "__main__":
    exit_on_user_error(main)
