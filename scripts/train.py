"""Trains one model: `python -m scripts.train --config=configs/default.py --workdir=DIR`."""

import time
from pathlib import Path

import jax
from absl import flags, logging
from ml_collections import config_flags

from scripts.cli import run_main
from trainers import distributed
from trainers.run_files import run_files
from trainers.summary import format_summary

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, results and figures.")
config_flags.DEFINE_config_file("config", None, "Training configuration file.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    del argv  # run_main rejects positional arguments
    start = time.perf_counter()
    config = FLAGS.config
    if config.get("distributed", False):
        distributed.initialize()
    logging.info(
        "JAX process %d of %d, devices: %s", jax.process_index(), jax.process_count(), jax.devices()
    )
    if config.get("task", "classification") == "seq2seq":
        from trainers.seq2seq_train import train_and_evaluate
    else:
        from trainers.train import train_and_evaluate
    results = train_and_evaluate(config, FLAGS.workdir)
    if jax.process_index() == 0:
        files = run_files(config, Path(FLAGS.workdir).expanduser())
        print(format_summary(results, files, time.perf_counter() - start), flush=True)


if __name__ == "__main__":
    run_main(main)
