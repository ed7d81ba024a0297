"""The comparison study: `python -m scripts.compare --config=configs/compare.py --workdir=DIR`.

Trains every (model, dataset, seed) pair of the config's grid that DIR does not hold yet, then
writes DIR/report.md; `--config.report_only=True` only rebuilds the report.
"""

from absl import flags
from ml_collections import config_flags

from scripts.cli import run_main
from trainers import distributed, grid

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory of the study: per-seed runs and the report.")
config_flags.DEFINE_config_file("config", None, "Study configuration file.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    del argv  # run_main rejects positional arguments
    config = FLAGS.config
    if config.train.get("distributed", False):
        distributed.initialize()
    report = grid.run_study(config, FLAGS.workdir)
    print(f"report: {report}")


if __name__ == "__main__":
    run_main(main, help_config="configs/compare.py")
