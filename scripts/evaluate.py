"""Recomputes a run's test figures from its checkpoint, with the same config and workdir.

`python -m scripts.evaluate --config=configs/default.py --workdir=DIR` restores the best
checkpoint that `scripts.train` kept and checks the figures against its results file.
"""

import json
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from jax_models.errors import UserError
from scripts.cli import run_main
from trainers.checkpoint import checkpoint_dir
from trainers.run_files import results_path, run_prefix
from trainers.train import Run, test_metrics

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "The workdir a scripts.train run wrote.")
config_flags.DEFINE_config_file("config", None, "The config of that run.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])

COMPARED = ("test_loss", "test_accuracy", "precision", "recall", "f1")


def evaluate(config, workdir: str) -> dict:
    """Test metrics of the best checkpoint in `workdir`, as `train_and_evaluate` reported them."""
    if config.get("task", "classification") != "classification":
        raise UserError(
            "scripts.evaluate recomputes a classifier run's test figures; a seq2seq run's are "
            "in its seq2seq_results.json, which scripts.train writes."
        )
    path = Path(workdir).expanduser().absolute()
    checkpoints = checkpoint_dir(path, run_prefix(config))
    if not checkpoints.is_dir():
        raise UserError(
            f"No checkpoint directory {checkpoints}; train first with "
            f"python -m scripts.train --config=... --workdir={workdir}."
        )
    run = Run(config, path)
    try:
        return test_metrics(run)
    finally:
        run.checkpointer.close()


def main(argv: list[str]) -> None:
    del argv
    metrics = evaluate(FLAGS.config, FLAGS.workdir)
    results_file = results_path(FLAGS.workdir, run_prefix(FLAGS.config))
    recorded = json.loads(results_file.read_text()) if results_file.is_file() else {}
    best = metrics["best_epoch"]
    recorded_best = recorded.get("best_epoch", best)
    note = (
        ""
        if recorded_best == best
        else f"  (not the recorded best: results file says {recorded_best})"
    )
    print(f"best epoch {best}{note}")
    for key in COMPARED:
        note = ""
        if key in recorded:
            note = (
                "  (matches results file)"
                if recorded[key] == metrics[key]
                else (f"  (results file says {recorded[key]:.6f})")
            )
        print(f"{key:>14}: {metrics[key]:.6f}{note}")


if __name__ == "__main__":
    run_main(main)
