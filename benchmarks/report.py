"""Writes the measured tables of docs/performance.md from the benchmarks' JSON files.

    python -m benchmarks.report --throughput runs/bench/cifar10.json runs/bench/mnist.json \
        --epochs runs/bench/epochs.json --doc docs/performance.md

Only the part between the `<!-- measured:begin -->` and `<!-- measured:end -->` markers is
replaced, so the prose around the tables (method, levers, conclusions) stays as written.
"""

import argparse
import json
from pathlib import Path

from jax_models.errors import UserError
from trainers.errors import exit_on_user_error

BEGIN, END = "<!-- measured:begin -->", "<!-- measured:end -->"


def throughput_table(results: dict) -> list[str]:
    shape = "x".join(str(s) for s in results["image_shape"])
    load = results["load_average_before"][0], results["load_average_after"][0]
    lines = [
        f"**{results['dataset']} shapes ({shape}), batch {results['batch_size']}, JAX computing "
        f"in {results.get('compute_dtype', 'float32')}**; "
        f"float32 matmul peak {results['peak_gflops']:.0f} GFLOP/s "
        f"(XLA {results['matmul_gflops']['jax']:.0f}, PyTorch "
        f"{results['matmul_gflops']['torch']:.0f}); 1-minute load average "
        f"{load[0]:.2f} before, {load[1]:.2f} after.",
        "",
        f"`{results['command']}`",
        "",
        "| model | params | JAX img/s | PyTorch img/s | ratio | median round ratio | "
        "compile s | GFLOP/s | MFU | JAX MB | PyTorch MB | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["models"]:
        lines.append(
            f"| {row['model']} | {row['params']:,} | {row['jax_images_per_s']:.1f} | "
            f"{row['torch_images_per_s']:.1f} | {row['ratio']:.2f} | {row['ratio_median']:.2f} | "
            f"{row['compile_s']:.1f} | {row['achieved_gflops']:.1f} | {row['mfu']:.0%} | "
            f"{row['peak_memory_mb']:.0f} | {row['torch_peak_memory_mb']:.0f} | "
            f"{row['load_average'][0]:.2f} |"
        )
    return lines


def epoch_table(results: dict) -> list[str]:
    lines = [
        f"**Whole epochs of the training loop**, batch {results['batch_size']}, compilation "
        f"cache `{results['compilation_cache_dir'] or 'off'}`.",
        "",
        f"`{results['command']}`",
        "",
        "| model | dataset | s/epoch | train s | validation s | loop img/s | timed steps "
        "| steps/epoch | first-epoch compile s | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["runs"]:
        lines.append(
            f"| {row['model']} | {row['dataset']} | {row['epoch_s']:.0f} | "
            f"{row['train_epoch_s']:.0f} | {row['validation_s']:.1f} | "
            f"{row['loop_images_per_s']:.1f} | {row['timed_steps']} | "
            f"{row['full_epoch_steps']} | {row['first_epoch_compile_s']:.1f} | "
            f"{row['load_average'][0]:.2f} |"
        )
    return lines


def machine_lines(machine: dict) -> list[str]:
    return [
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores; Python {machine['python']}, "
        f"JAX {machine['jax']} (jaxlib {machine['jaxlib']}), Flax {machine['flax']}, optax "
        f"{machine['optax']}, PyTorch {machine['torch']} ({machine['torch_threads']} threads); "
        f"XLA_FLAGS `{machine['xla_flags'] or 'unset'}`.",
    ]


def render(throughput: list[dict], epochs: dict | None) -> str:
    lines = machine_lines(throughput[0]["machine"]) + [""]
    for results in throughput:
        lines += throughput_table(results) + [""]
    if epochs is not None:
        lines += epoch_table(epochs) + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("--throughput", nargs="+", required=True, help="benchmarks.throughput JSON")
    parser.add_argument("--epochs", help="benchmarks.epoch_time JSON")
    parser.add_argument("--doc", default="docs/performance.md")
    args = parser.parse_args(argv)
    doc = Path(args.doc)
    text = doc.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise UserError(f"{doc} needs one {BEGIN} and one {END} line around the tables.")
    throughput = [json.loads(Path(p).read_text()) for p in args.throughput]
    epochs = json.loads(Path(args.epochs).read_text()) if args.epochs else None
    head, rest = text.split(BEGIN)
    tail = rest.split(END)[1]
    doc.write_text(f"{head}{BEGIN}\n{render(throughput, epochs)}\n{END}{tail}")


if __name__ == "__main__":
    exit_on_user_error(main)
