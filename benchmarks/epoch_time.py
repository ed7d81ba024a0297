"""Seconds per epoch of the real training loop, data handling and Python overhead included.

    python -m benchmarks.epoch_time --models lenet5,resnet18 --datasets mnist,cifar10 \
        --data-dir ../shared/datasets --json runs/bench/epochs.json

`benchmarks.throughput` times one train step; this times what a user waits for: the pipeline's
own `train_epoch` (shuffle, per-step dispatch, progress bar, metrics) and validation
`evaluate`, on the real data. A full epoch of a large network takes tens of minutes on two
CPU cores, so by default each epoch is `--steps` batches long and the figure is scaled to the
whole split (steps per full epoch x measured seconds per step, plus the validation pass scaled
from `--eval-examples` images); `--steps 0` trains and evaluates the whole split instead. The
first epoch pays for compilation and is reported separately; the second is the one timed.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jax

from benchmarks.throughput import load_average, machine
from configs import default
from jax_models.errors import UserError
from trainers import train as train_lib
from trainers.errors import exit_on_user_error


def training_examples(dataset: str, args: argparse.Namespace) -> int:
    """Examples in a full training epoch: the training split less the validation hold-out."""
    train = train_lib.load_dataset(dataset, args.data_dir, args.data_source).splits["train"]
    fraction = default.get_config().validation_fraction
    return len(train) - max(1, round(len(train) * fraction))


def epoch_figures(
    model: str, dataset: str, full_train: int, args: argparse.Namespace, workdir: Path
) -> dict[str, float]:
    config = default.get_config()
    config.model = model
    config.dataset = dataset
    config.data_dir = args.data_dir
    config.data_source = args.data_source
    config.batch_size = args.batch_size
    config.num_epochs = 2
    config.max_train_examples = args.steps * args.batch_size
    config.compilation_cache_dir = args.compilation_cache_dir
    run = train_lib.Run(config, workdir / f"{model}_{dataset}")
    full_steps = full_train // args.batch_size
    steps = run.num_train // args.batch_size

    _, first_epoch_s, compile_s = train_lib.train_epoch(run, 1)
    _, train_s, _ = train_lib.train_epoch(run, 2)

    images, labels = run.splits["val"]
    num_eval = labels.shape[0] if args.eval_examples <= 0 else args.eval_examples
    num_eval = min(num_eval, labels.shape[0])
    sample = (images[:num_eval], labels[:num_eval])
    evaluate = lambda: train_lib.evaluate(  # noqa: E731
        run.model, *sample, batch_size=config.eval_batch_size, mesh=run.mesh
    )
    start = time.perf_counter()
    evaluate()
    eval_compile_s = time.perf_counter() - start
    start = time.perf_counter()
    evaluate()
    eval_s = (time.perf_counter() - start) * labels.shape[0] / num_eval
    run.checkpointer.close()

    train_full_s = train_s / steps * full_steps
    return {
        "model": model,
        "dataset": dataset,
        "timed_steps": steps,
        "full_epoch_steps": full_steps,
        "first_epoch_compile_s": compile_s,
        "eval_compile_s": eval_compile_s,
        "train_s_per_step": train_s / steps,
        "loop_images_per_s": steps * args.batch_size / train_s,
        "train_epoch_s": train_full_s,
        "validation_s": eval_s,
        "epoch_s": train_full_s + eval_s,
        "load_average": load_average(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.epoch_time", description=__doc__)
    parser.add_argument("--models", required=True, help="comma-separated jax_models names")
    parser.add_argument("--datasets", default="mnist,cifar10", help="comma-separated datasets")
    parser.add_argument(
        "--data-dir", default=default.get_config().data_dir, help="holds {dataset}/ with its files"
    )
    parser.add_argument("--data-source", default="auto", choices=("auto", "files", "tfds"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="batches per timed epoch; 0: all")
    parser.add_argument(
        "--eval-examples", type=int, default=1000, help="validation images timed; 0: all"
    )
    parser.add_argument(
        "--compilation-cache-dir",
        default=default.get_config().compilation_cache_dir,
        help="the pipeline's compilation cache ('' for none), as --config.compilation_cache_dir",
    )
    parser.add_argument("--json", required=True, help="where to write the results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.steps < 0 or args.batch_size <= 0:
        raise UserError("--steps must be 0 or more and --batch-size positive.")
    models = [m for m in args.models.split(",") if m]
    datasets = [d for d in args.datasets.split(",") if d]
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for dataset in datasets:
            full_train = training_examples(dataset, args)
            for model in models:
                row = epoch_figures(model, dataset, full_train, args, Path(workdir))
                rows.append(row)
                print(
                    f"{model} on {dataset}: {row['epoch_s']:.0f} s/epoch "
                    f"({row['loop_images_per_s']:.0f} img/s in the loop, "
                    f"compile {row['first_epoch_compile_s']:.1f} s)",
                    flush=True,
                )
    results = {
        "command": "python -m benchmarks.epoch_time "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "batch_size": args.batch_size,
        "devices": jax.device_count(),
        "compilation_cache_dir": args.compilation_cache_dir,
        "machine": machine(),
        "runs": rows,
    }
    out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    exit_on_user_error(main)
