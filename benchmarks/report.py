"""Writes the measured tables of docs/performance.md from the benchmarks' JSON files.

    python -m benchmarks.report --throughput runs/bench/cifar10.json runs/bench/mnist.json \
        --epochs runs/bench/epochs.json --doc docs/performance.md

Only the part between the `<!-- measured:begin -->` and `<!-- measured:end -->` markers is
replaced, so the prose around the tables (method, levers, conclusions) stays as written;
`--section avx2` writes between `<!-- avx2:begin -->` and `<!-- avx2:end -->` instead (the
tables of `benchmarks.throughput --max-isa avx2`).
"""

import argparse
import json
from pathlib import Path

from jax_models.errors import UserError
from trainers.errors import exit_on_user_error


def markers(section: str) -> tuple[str, str]:
    return f"<!-- {section}:begin -->", f"<!-- {section}:end -->"


def tables_of(results: dict) -> list[dict]:
    """The per-(dataset, dtype) tables of a `benchmarks.throughput` JSON, each with the run's
    common fields (command, load, machine): one run may hold one table or several."""
    if "tables" not in results:
        return [results]
    common = {k: v for k, v in results.items() if k != "tables"}
    return [common | table for table in results["tables"]]


def figure(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def throughput_table(results: dict, command: bool = True) -> list[str]:
    """One table of a throughput JSON; `command`: with the command line that produced it."""
    shape = "x".join(str(s) for s in results["image_shape"])
    load = results["load_average_before"][0], results["load_average_after"][0]
    rows = results["models"]
    dtype = results.get("compute_dtype", "float32")
    precision = results.get("precision", dtype)
    torch_precision = results.get("torch_precision", "float32")
    on_accelerator = results.get("machine", {}).get("jax_backend", "cpu") != "cpu"
    # Runs before the GPU benchmark timed a float32 peak whatever the step's dtype.
    peak_dtype = precision if "precision" in results else "float32"
    matmul = results.get("matmul_gflops") or {}
    lines = [
        f"**{results['dataset']} shapes ({shape}), batch {results['batch_size']}, JAX computing "
        f"in {precision}**"
        + (f", PyTorch in {torch_precision}" if "torch_precision" in results else "")
        + f"; {peak_dtype} matmul peak {figure(results['peak_gflops'], '.0f')} GFLOP/s "
        f"(XLA {figure(matmul.get('jax'), '.0f')}, PyTorch {figure(matmul.get('torch'), '.0f')}"
        f"); 1-minute load average {load[0]:.2f} before, {load[1]:.2f} after.",
        "",
    ]
    if command:
        lines += [f"`{results['command']}`", ""]
    columns = [
        ("model", "---", lambda r: r["model"]),
        ("params", "---:", lambda r: f"{r['params']:,}"),
        ("JAX img/s", "---:", lambda r: f"{r['jax_images_per_s']:.1f}"),
        ("PyTorch img/s", "---:", lambda r: f"{r['torch_images_per_s']:.1f}"),
        ("ratio", "---:", lambda r: f"{r['ratio']:.2f}"),
        ("median round ratio", "---:", lambda r: f"{r['ratio_median']:.2f}"),
    ]
    if any("torch_compile_images_per_s" in r for r in rows):
        columns += [
            (
                "PyTorch compiled img/s",
                "---:",
                lambda r: figure(r.get("torch_compile_images_per_s"), ".1f"),
            ),
            ("ratio to compiled", "---:", lambda r: figure(r.get("torch_compile_ratio"), ".2f")),
        ]
    columns += [
        ("compile s", "---:", lambda r: f"{r['compile_s']:.1f}"),
        ("GFLOP/s", "---:", lambda r: f"{r['achieved_gflops']:.1f}"),
        ("MFU", "---:", lambda r: figure(r.get("mfu"), ".0%")),
    ]
    if any("torch_mfu" in r for r in rows):
        columns.append(("PyTorch MFU", "---:", lambda r: figure(r.get("torch_mfu"), ".0%")))
    columns += [
        (
            "JAX MB",
            "---:",
            lambda r: (
                f"{r['peak_memory_mb']:.0f}"
                + ("*" if on_accelerator and r.get("peak_memory_source") == "xla" else "")
            ),
        ),
        ("PyTorch MB", "---:", lambda r: f"{r['torch_peak_memory_mb']:.0f}"),
    ]
    if any("torch_layout_trial_s" in r for r in rows):
        columns.append(
            (
                "PyTorch layout",
                "---",
                lambda r: "channels-last" if r.get("torch_channels_last") else "NCHW",
            )
        )
    columns.append(("load", "---:", lambda r: f"{r['load_average'][0]:.2f}"))
    lines += [
        "| " + " | ".join(name for name, _, _ in columns) + " |",
        "|" + "|".join(align for _, align, _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(row) for _, _, cell in columns) + " |" for row in rows]
    if on_accelerator and any(r.get("peak_memory_source") == "xla" for r in rows):
        lines += [
            "",
            "\\* XLA's buffer assignment for the step: the device's peak counter serves the "
            "whole process, and an earlier row had already set it higher.",
        ]
    errors = {r["model"]: r["torch_compile_error"] for r in rows if r.get("torch_compile_error")}
    if errors:
        lines += [""] + [f"torch.compile n/a for {m}: `{e}`" for m, e in errors.items()]
    return lines


def unfinished_lines(results: dict) -> list[str]:
    """The rows a budgeted run skipped, failed or had not reached when it was stopped."""
    lines = []
    for key, title in (("skipped", "Skipped"), ("failed", "Failed"), ("pending", "Not reached")):
        for unit in results.get(key, []):
            why = unit.get("reason") or unit.get("error") or "the run stopped before it"
            lines.append(
                f"- {title}: {unit['model']}, {unit['dataset']}, {unit['compute_dtype']}, "
                f"{'JAX and eager PyTorch' if unit['kind'] == 'eager' else 'torch.compile'}: "
                f"{why}"
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
    accelerator = ""
    if machine.get("jax_backend", "cpu") != "cpu" or machine.get("gpu"):
        accelerator = (
            f"; JAX on {machine['jax_device_count']} x {machine['jax_device']} "
            f"({machine['jax_backend']}), PyTorch on {machine['torch_device']}"
            + (
                f" ({machine['gpu']}, CUDA {machine['cuda']}, cuDNN {machine['cudnn']})"
                if machine.get("gpu")
                else ""
            )
        )
    cpu = machine["cpu"]
    if machine.get("cpu_family_model"):
        cpu += f" ({machine['cpu_family_model']})"
    vector = ""
    if machine.get("cpu_vector_extensions"):
        vector = f"; vector extensions: {' '.join(machine['cpu_vector_extensions'])}"
    return [
        f"Machine: {cpu}, {machine['cpu_count']} cores{vector}{accelerator}; Python "
        f"{machine['python']}, JAX {machine['jax']} (jaxlib {machine['jaxlib']}), Flax "
        f"{machine['flax']}, optax {machine['optax']}, PyTorch {machine['torch']} "
        f"({machine['torch_threads']} threads); XLA_FLAGS `{machine['xla_flags'] or 'unset'}`"
        f"{compiler_options(machine)}{isa_caps(machine)}.",
    ]


def compiler_options(machine: dict) -> str:
    """The XLA options the JAX step compiled with (`trainers.xla_options`), where it had any."""
    options = machine.get("xla_compiler_options")
    if not options:
        return ""
    return "; the JAX step compiled with " + ", ".join(f"`{k}={v}`" for k, v in options.items())


def isa_caps(machine: dict) -> str:
    """The libraries' code-path switches the run set (`--max-isa`), as the machine line's end."""
    caps = [f"`{key}={value}`" for key, value in machine.get("isa_switches", {}).items()]
    if machine.get("ynnpack_arch_flags"):
        caps.append(f"YNNPACK's CPU flags set to {machine['ynnpack_arch_flags']}")
    if not caps:
        return ""
    return (
        f"; code paths capped: {', '.join(caps)} (PyTorch's reported capability: "
        f"{machine.get('torch_cpu_capability', 'n/a')})"
    )


def render(throughput: list[dict], epochs: dict | None) -> str:
    """The runs' tables, each run under its machine line where it differs from the one before
    (the same CPU with and without `--max-isa avx2`, say)."""
    lines: list[str] = []
    previous_machine = None
    for results in throughput:
        if results["machine"] != previous_machine:
            lines += machine_lines(results["machine"]) + [""]
            previous_machine = results["machine"]
        tables = [table for table in tables_of(results) if table["models"]]
        for index, table in enumerate(tables):
            lines += throughput_table(table, command=index == 0) + [""]
        unfinished = unfinished_lines(results)
        if unfinished:
            lines += unfinished + [""]
    if epochs is not None:
        lines += epoch_table(epochs) + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("--throughput", nargs="+", required=True, help="benchmarks.throughput JSON")
    parser.add_argument("--epochs", help="benchmarks.epoch_time JSON")
    parser.add_argument("--doc", default="docs/performance.md")
    parser.add_argument("--section", default="measured", help="the doc's markers to write between")
    args = parser.parse_args(argv)
    doc = Path(args.doc)
    text = doc.read_text()
    begin, end = markers(args.section)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise UserError(f"{doc} needs one {begin} and one {end} line around the tables.")
    throughput = [json.loads(Path(p).read_text()) for p in args.throughput]
    epochs = json.loads(Path(args.epochs).read_text()) if args.epochs else None
    head, rest = text.split(begin)
    tail = rest.split(end)[1]
    doc.write_text(f"{head}{begin}\n{render(throughput, epochs)}\n{end}{tail}")


if __name__ == "__main__":
    exit_on_user_error(main)
