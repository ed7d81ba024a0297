"""Live curves through clu.metric_writers: train loss and accuracy every `log_every_steps`,
validation metrics, learning rate and epoch time every epoch, the config as hyperparameters;
TensorBoard event files where TensorFlow is installed, one warning and no files where not."""

import sys
from pathlib import Path

import clu
import ml_collections
import numpy as np
import pytest

from tests.fake_data import write_idx_dataset
from tests.test_pipeline import tiny_config
from tests.test_recipes import strong_config
from trainers import metric_writer, recipes
from trainers import train as train_lib

STEPS = 13  # tiny_config on the fake MNIST: 216 training examples in batches of 16
TRAIN_TAGS = {"train_loss", "train_accuracy"}
EPOCH_TAGS = {"val_loss", "val_accuracy", "learning_rate", "epoch_time_s", "epoch"}


class RecordingWriter:
    """Keeps what the trainer writes, in order."""

    def __init__(self):
        self.scalars: list[tuple[int, dict[str, float]]] = []
        self.hparams: dict = {}
        self.closed = False

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        self.scalars.append((step, dict(scalars)))

    def write_hparams(self, hparams: dict) -> None:
        self.hparams = dict(hparams)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root, "mnist")
    write_idx_dataset(root, "fashion_mnist")
    return root


def recorded_run(config: ml_collections.ConfigDict, workdir: Path, monkeypatch) -> tuple:
    writer = RecordingWriter()
    opened = []

    def create_writer(logdir: Path, enabled: bool = True) -> RecordingWriter:
        opened.append((logdir, enabled))
        return writer

    monkeypatch.setattr(metric_writer, "create_writer", create_writer)
    results = train_lib.train_and_evaluate(config, str(workdir))
    assert opened == [(workdir / f"{config.model}_{config.dataset}_tensorboard", True)]
    return results, writer


def test_trainer_writes_train_windows_and_epoch_metrics(data_root, tmp_path, monkeypatch):
    config = tiny_config(data_root, num_epochs=2, log_every_steps=5)
    results, writer = recorded_run(config, tmp_path, monkeypatch)
    train = [(step, s) for step, s in writer.scalars if set(s) == TRAIN_TAGS]
    epochs = [(step, s) for step, s in writer.scalars if set(s) == EPOCH_TAGS]
    assert len(train) + len(epochs) == len(writer.scalars)
    # Every 5 steps and at each epoch's end, numbered across epochs.
    assert [step for step, _ in train] == [5, 10, 13, 18, 23, 26]
    assert [step for step, _ in epochs] == [STEPS, 2 * STEPS]
    history = results["history"]
    for epoch, window_ends in enumerate(([5, 10, 13], [18, 23, 26])):
        # The windows' means, weighted by their steps, make up the epoch's mean.
        start = epoch * STEPS
        sizes = np.diff([start, *window_ends])
        means = [s["train_loss"] for step, s in train if step in window_ends]
        assert np.dot(sizes, means) / STEPS == pytest.approx(history["train_loss"][epoch], 1e-5)
        _, logged = epochs[epoch]
        assert logged["val_accuracy"] == history["val_accuracy"][epoch]
        assert logged["val_loss"] == history["val_loss"][epoch]
        assert logged["epoch_time_s"] == history["epoch_time_s"][epoch]
        assert logged["learning_rate"] == 1e-3 and logged["epoch"] == epoch + 1
    assert writer.hparams["model"] == "lenet5" and writer.hparams["optimizer"] == "adam"
    assert writer.hparams["learning_rate"] == 1e-3 and writer.closed


def test_learning_rate_curve_follows_the_schedule(data_root, tmp_path, monkeypatch):
    config = strong_config(data_root)
    config.update(dataset="mnist", num_epochs=2)
    _, writer = recorded_run(config, tmp_path, monkeypatch)
    rates = [s["learning_rate"] for _, s in writer.scalars if "learning_rate" in s]
    schedule = recipes.learning_rate(config, 2 * STEPS)
    assert rates == pytest.approx([float(schedule(STEPS - 1)), float(schedule(2 * STEPS - 1))])
    assert rates[0] > rates[1] > 0


def test_a_finished_run_opens_no_writer(data_root, tmp_path, monkeypatch):
    config = tiny_config(data_root)
    recorded_run(config, tmp_path, monkeypatch)

    def must_not_open(logdir: Path, enabled: bool = True):
        raise AssertionError("a finished run opened a writer")

    monkeypatch.setattr(metric_writer, "create_writer", must_not_open)
    train_lib.train_and_evaluate(config, str(tmp_path))


def test_hparams_are_flat_scalars():
    config = ml_collections.ConfigDict(
        {"model": "lenet5", "lr": 0.1, "train": {"batch_size": 32, "flip": True}, "lengths": (2, 3)}
    )
    assert metric_writer.hparams(config) == {
        "model": "lenet5",
        "lr": 0.1,
        "train.batch_size": 32,
        "train.flip": True,
        "lengths": "(2, 3)",
    }


def test_event_files_hold_the_expected_tags(data_root, tmp_path):
    """Needs the tensorboard extra (TensorFlow, which clu's summary writer uses)."""
    tf = pytest.importorskip("tensorflow", reason='needs pip install -e ".[tensorboard]"')
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    config = tiny_config(data_root, num_epochs=2, log_every_steps=5)
    results = train_lib.train_and_evaluate(config, str(tmp_path))
    logdir = metric_writer.tensorboard_dir(tmp_path, "lenet5_mnist")
    assert list(logdir.glob("events.out.tfevents.*"))
    events = accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert tags >= TRAIN_TAGS | EPOCH_TAGS
    assert any(tag.startswith("_hparams_") for tag in tags)
    train_steps = [event.step for event in events.Tensors("train_loss")]
    assert train_steps == [5, 10, 13, 18, 23, 26]
    val = [float(tf.make_ndarray(event.tensor_proto)) for event in events.Tensors("val_accuracy")]
    assert val == pytest.approx(results["history"]["val_accuracy"])


def test_without_tensorflow_a_run_writes_no_curves_and_says_so_once(tmp_path, monkeypatch, caplog):
    for name in [n for n in sys.modules if n.startswith(("tensorflow", "clu.metric_writers"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow fails
    monkeypatch.delattr(clu, "metric_writers", raising=False)
    metric_writer._warn_no_tensorflow.cache_clear()
    writers = [metric_writer.create_writer(tmp_path / name) for name in ("a", "b")]
    assert all(isinstance(writer, metric_writer.NullWriter) for writer in writers)
    warnings = [r.getMessage() for r in caplog.records if "No TensorBoard" in r.getMessage()]
    assert warnings == [
        "No TensorBoard curves: clu writes event files through TensorFlow, which is not "
        'installed; install it with pip install -e ".[tensorboard]".'
    ]
    assert not (tmp_path / "a").exists()
    other_process = metric_writer.create_writer(tmp_path / "c", enabled=False)
    assert isinstance(other_process, metric_writer.NullWriter)
