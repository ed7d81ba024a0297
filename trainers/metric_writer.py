"""Live training curves: TensorBoard event files through `clu.metric_writers`, as the Flax
examples write them, in `{workdir}/{model}_{dataset}_tensorboard/`.

clu's summary writer is TensorFlow's, so the event files need the optional extra
(`pip install -e ".[tensorboard]"`, which brings TensorFlow's CPU build and TensorBoard).
Without it a run trains exactly the same, says once that it writes no curves, and keeps its
results file and curves figure; with several processes only the first writes.
"""

import functools
import os
from pathlib import Path
from typing import Any, Protocol

import ml_collections
from absl import logging

TENSORBOARD_SUFFIX = "_tensorboard"


class ScalarWriter(Protocol):
    """The part of clu's `MetricWriter` the trainer uses."""

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None: ...

    def write_hparams(self, hparams: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class NullWriter:
    """Writes nothing: other processes than the first, or no TensorFlow installed."""

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        del step, scalars

    def write_hparams(self, hparams: dict[str, Any]) -> None:
        del hparams

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def tensorboard_dir(workdir: Path, prefix: str) -> Path:
    """One directory per run, so TensorBoard shows each (model, dataset) as its own run."""
    return Path(workdir) / f"{prefix}{TENSORBOARD_SUFFIX}"


def create_writer(logdir: Path, enabled: bool = True) -> ScalarWriter:
    """clu's default writer (absl logging and event files in `logdir`), or a `NullWriter`
    when not `enabled` or when clu cannot write summaries for want of TensorFlow."""
    if not enabled:
        return NullWriter()
    # TensorFlow's C++ start-up notes (oneDNN, CPU features) would land in every run's log.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from clu import metric_writers
    except ImportError as error:
        if (error.name or "").split(".")[0] != "tensorflow":
            raise
        _warn_no_tensorflow()
        return NullWriter()
    return metric_writers.create_default_writer(logdir, asynchronous=True)


@functools.cache
def _warn_no_tensorflow() -> None:
    """Once per process: a grid of twenty runs needs to hear it once."""
    logging.warning(
        "No TensorBoard curves: clu writes event files through TensorFlow, which is not "
        'installed; install it with pip install -e ".[tensorboard]".'
    )


def hparams(config: ml_collections.ConfigDict) -> dict[str, bool | int | float | str]:
    """The config as TensorBoard's hyperparameters: dotted keys, scalars kept, others as text."""
    flat: dict[str, bool | int | float | str] = {}

    def visit(node: Any, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, ml_collections.ConfigDict | dict):
                visit(value, f"{prefix}{key}.")
            elif isinstance(value, bool | int | float | str):
                flat[f"{prefix}{key}"] = value
            else:
                flat[f"{prefix}{key}"] = str(value)

    visit(config, "")
    return flat
