"""Which library runs each convolution of a model's CPU train step, and why.

    python -m benchmarks.conv_routing --models lenet5,resnet18 --dataset cifar10 \
        --batch-size 128 --json runs/bench/conv_routing_cifar10.json

XLA's CPU backend hands a convolution to one of three implementations, decided when the step is
compiled, from shapes alone (so the same on every x86 CPU, with or without AVX-512):

- **YNNPACK** (a `__ynn_fusion`), the fast one, only for a convolution already in NHWC/HWIO
  order with more than 16 input or output features, no input dilation (`lhs_dilate`, which
  every strided convolution's input gradient has), no window reversal, and an output and kernel
  no larger than the input in each spatial dimension (XLA's `IsConvolutionOpSupportedByYnn`);
- **Eigen**'s convolution, for any other convolution in that canonical order;
- XLA's own **loop emitter** for the rest: non-canonical convolutions, which XLA rewrites into
  the canonical order only in a program's entry computation (so kernel gradients inside a loop
  body land here, jax-ml/jax#12868).

The project's steps compile on the CPU with YNNPACK's convolutions switched off
(`trainers.xla_options`: they run on one core at the study's channel counts), so there Eigen
runs what YNNPACK would have taken, reported as switched off; with XLA_FLAGS setting
`--xla_cpu_experimental_ynn_fusion_type` the user's choice holds instead.

This compiles `trainers.train.train_step` for each model on the CPU, reads every convolution of
the optimised program, and reports its role (forward, input gradient, kernel gradient), its
FLOPs, where it runs, and for those outside YNNPACK the conditions they fail. It times
nothing: how fast each library is depends on the CPU, which `benchmarks.throughput` measures.
"""

import argparse
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import jax

import jax_models
from benchmarks.throughput import JaxSide
from jax_models.errors import UserError
from trainers import xla_options
from trainers.data import DATASETS
from trainers.errors import exit_on_user_error

CANONICAL = "b01f_01io->b01f"
# YNNPACK leaves convolutions whose input and output features are both at most this to Eigen.
YNN_MIN_FEATURES = 16
HEADER = re.compile(r"^(?:ENTRY )?%([\w.\-]+) \(.*\{$")
INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (\w+)\[([\d,]*)\]\S* ([\w\-]+)\((.*)$")
ROUTES = ("YNNPACK", "Eigen", "XLA loop emitter")
SWITCHED_OFF = "YNNPACK's convolutions switched off (trainers.xla_options)"


@dataclass
class Convolution:
    name: str
    lhs_name: str  # the instruction that computes its input
    role: str  # forward, input gradient, kernel gradient
    route: str  # one of ROUTES
    refusals: list[str]  # the YNNPACK conditions it fails
    lhs: list[int]
    rhs: list[int]
    out: list[int]
    dim_labels: str
    window: str
    gflops: float


def parse_computations(hlo: str) -> dict[str, list[str]]:
    """The optimised HLO text's computations: name -> instruction lines."""
    computations: dict[str, list[str]] = {}
    current = None
    for line in hlo.splitlines():
        header = HEADER.match(line)
        if header:
            current = computations.setdefault(header.group(1), [])
        elif line.startswith("}"):
            current = None
        elif current is not None and line.strip():
            current.append(line)
    return computations


def instructions(computations: dict[str, list[str]]) -> dict[str, re.Match]:
    """Every instruction of `parse_computations`' result by name, as `INSTRUCTION` matched it
    (groups: name, element type, shape, opcode, operands and attributes)."""
    found = {}
    for lines in computations.values():
        for line in lines:
            match = INSTRUCTION.match(line)
            if match:
                found[match.group(1)] = match
    return found


def _shape(text: str) -> list[int]:
    return [int(size) for size in text.split(",") if size]


def operands(args: str) -> list[str]:
    """The operand names of an instruction's argument text `(%a, %b), attr=...`."""
    return re.findall(r"%([\w.\-]+)", args.split(")", 1)[0])


def _dims(labels: str, shape: list[int]) -> dict[str, int]:
    return {label: size for label, size in zip(labels, shape, strict=True)}


def refusals(
    lhs: list[int], rhs: list[int], out: list[int], dim_labels: str, window: str
) -> list[str]:
    """The conditions of XLA's `IsConvolutionOpSupportedByYnn` this convolution fails."""
    if dim_labels != CANONICAL:
        return [f"layout {dim_labels}, not {CANONICAL}"]
    failed = []
    if max(lhs[3], out[3]) <= YNN_MIN_FEATURES:
        failed.append(f"features {lhs[3]} in / {out[3]} out, both <= {YNN_MIN_FEATURES}")
    if "lhs_dilate=" in window:
        failed.append("input dilation (a strided convolution's input gradient)")
    if "rhs_reversal=" in window:
        failed.append("window reversal")
    if out[1] > lhs[1] or out[2] > lhs[2]:
        failed.append(f"output {out[1]}x{out[2]} larger than input {lhs[1]}x{lhs[2]}")
    if rhs[0] > lhs[1] or rhs[1] > lhs[2]:
        failed.append(f"kernel {rhs[0]}x{rhs[1]} larger than input {lhs[1]}x{lhs[2]}")
    return failed


def _role(window: str, out: dict[str, int], line: str) -> str:
    """forward, input gradient or kernel gradient. A kernel gradient slides the output gradient
    over the input: its window is the map and its output the kernel's size. XLA may rewrite
    it without keeping its metadata, so the shapes decide that one."""
    window_size = [int(s) for s in re.search(r"size=([\dx]+)", window).group(1).split("x")]
    out_spatial = [size for label, size in out.items() if label.isdigit()]
    if any(w > o for w, o in zip(window_size, out_spatial, strict=True)):
        return "kernel gradient"
    op_name = re.search(r'op_name="([^"]*)"', line)
    return "input gradient" if op_name and "transpose(" in op_name.group(1) else "forward"


def convolutions(hlo: str, ynnpack_convolutions_off: bool = False) -> list[Convolution]:
    """Every convolution of an optimised CPU program, with where it runs; an Eigen convolution
    that meets YNNPACK's conditions is reported as switched off where the program was compiled
    with YNNPACK's convolutions off (`trainers.xla_options`)."""
    computations = parse_computations(hlo)
    shapes = {name: _shape(match.group(3)) for name, match in instructions(computations).items()}
    ynn_bodies, fused_bodies = set(), set()
    for lines in computations.values():
        for line in lines:
            called = re.search(r"calls=%([\w.\-]+)", line)
            if called and " fusion(" in line:
                (ynn_bodies if "__ynn_fusion" in line else fused_bodies).add(called.group(1))
    found = []
    for computation, lines in computations.items():
        for line in lines:
            match = INSTRUCTION.match(line)
            if not match or match.group(4) != "convolution":
                continue
            name, out = match.group(1), _shape(match.group(3))
            lhs_name, rhs_name = operands(match.group(5))[:2]
            lhs, rhs = shapes[lhs_name], shapes[rhs_name]
            dim_labels = re.search(r"dim_labels=([\w>-]+)", line).group(1)
            window = re.search(r"window=\{([^}]*)\}", line).group(1)
            _, kernel_labels = dim_labels.split("_", 1)
            rhs_labels, out_labels = kernel_labels.split("->")
            kernel = _dims(rhs_labels, rhs)
            spatial = math.prod(size for label, size in kernel.items() if label.isdigit())
            # An input-dilated convolution multiplies the inserted zeros too: count only the
            # products with real inputs, the FLOPs of the convolution it differentiates.
            dilation = re.search(r"lhs_dilate=([\dx]+)", window)
            zeros = math.prod(int(d) for d in dilation.group(1).split("x")) if dilation else 1
            gflops = 2 * math.prod(out) * spatial * kernel["i"] / zeros / 1e9
            role = _role(window, _dims(out_labels, out), line)
            if computation in ynn_bodies:
                route = "YNNPACK"
            elif computation in fused_bodies or dim_labels != CANONICAL:
                route = "XLA loop emitter"
            else:
                route = "Eigen"
            failed = [] if route == "YNNPACK" else refusals(lhs, rhs, out, dim_labels, window)
            if route == "Eigen" and not failed and ynnpack_convolutions_off:
                failed = [SWITCHED_OFF]
            found.append(
                Convolution(
                    name, lhs_name, role, route, failed, lhs, rhs, out, dim_labels, window, gflops
                )
            )
    return found


def compiled_step_hlo(name: str, shape: tuple[int, int, int], batch_size: int) -> str:
    """The optimised HLO of the project's train step for `name`, compiled for the CPU as
    training compiles it (with `trainers.xla_options`)."""
    return JaxSide(name, shape, batch_size).compiled().as_text()


def summary(found: list[Convolution]) -> dict[str, dict[str, float]]:
    """Convolutions and GFLOPs per route."""
    totals = {route: {"count": 0, "gflops": 0.0} for route in ROUTES}
    for conv in found:
        totals[conv.route]["count"] += 1
        totals[conv.route]["gflops"] += conv.gflops
    return totals


def markdown(results: dict) -> str:
    lines = [
        f"Train step at batch {results['batch_size']}, {results['dataset']} shapes, compiled "
        "for the CPU: convolutions and the share of their FLOPs by where they run.",
        "",
        "| model | " + " | ".join(ROUTES) + " |",
        "|---|" + "---:|" * len(ROUTES),
    ]
    for row in results["models"]:
        total = sum(route["gflops"] for route in row["routes"].values()) or 1.0
        cells = [
            f"{row['routes'][r]['count']} ({100 * row['routes'][r]['gflops'] / total:.0f} %)"
            for r in ROUTES
        ]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    lines += ["", "Outside YNNPACK:", ""]
    lines += ["| model | role | lhs | kernel | out | GFLOP | route | why not YNNPACK |"]
    lines += ["|---|---|---|---|---|---:|---|---|"]
    for row in results["models"]:
        for conv in row["convolutions"]:
            if conv["route"] != "YNNPACK":
                lines.append(
                    f"| {row['model']} | {conv['role']} | {conv['lhs']} | {conv['rhs']} | "
                    f"{conv['out']} | {conv['gflops']:.3f} | {conv['route']} | "
                    f"{'; '.join(conv['refusals'])} |"
                )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="lenet5,resnet18")
    parser.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--json", type=Path, help="write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if jax.default_backend() != "cpu":
        raise UserError("conv_routing reads XLA's CPU program: run it with JAX_PLATFORMS=cpu.")
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1.")
    names = [name for name in args.models.split(",") if name]
    for name in names:
        jax_models.check_name(name)
    shape = DATASETS[args.dataset].image_shape
    options = xla_options.compiler_options("cpu")
    switched_off = bool(options)
    results = {
        "dataset": args.dataset,
        "batch_size": args.batch_size,
        "compiler_options": options,
        "models": [],
    }
    for name in names:
        found = convolutions(compiled_step_hlo(name, shape, args.batch_size), switched_off)
        results["models"].append(
            {"model": name, "routes": summary(found), "convolutions": [asdict(c) for c in found]}
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    return results


if __name__ == "__main__":
    exit_on_user_error(main)
