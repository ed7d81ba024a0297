"""Trained runs for the app tests: the README's two trainings (a classifier, a sequence
reverser) made by `scripts.train`'s own code at a budget of seconds, laid out as the README's
commands leave them in `runs/`, for the app to serve with `--checkpoints runs`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flax import nnx

import jax_models
from configs import default as cnn_configs
from configs import seq2seq as seq2seq_configs
from tests.fake_data import write_idx_dataset
from trainers import seq2seq_train
from trainers.train import train_and_evaluate

# The runs' names in the app (file prefixes below `runs/`), which the API takes.
CLASSIFIER = "tiny_mnist/app_tiny_linear_mnist"
REVERSER = "seq2seq/seq2seq"  # lists of 1 to 5 tokens, with attention
REVERSER_LENGTHS = (1, 5)


@jax_models.register("app_tiny_linear")
class TinyLinear(nnx.Module):
    """The smallest classifier `scripts.train` can train: it compiles in a second."""

    def __init__(self, *, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs):
        self.head = nnx.Linear(int(np.prod(input_shape)), num_classes, rngs=rngs)

    def __call__(self, x):
        return self.head(x.reshape(x.shape[0], -1))


def train_classifier(workdir: Path, data_dir: Path) -> None:
    """One epoch of `TinyLinear` on a tiny MNIST written in the publisher's format."""
    write_idx_dataset(data_dir, "mnist", num_train=64, num_test=32)
    config = cnn_configs.get_config()
    config.update(
        model="app_tiny_linear",
        data_dir=str(data_dir),
        data_source="files",
        num_epochs=1,
        batch_size=16,
        eval_batch_size=32,
    )
    train_and_evaluate(config, str(workdir))


def train_reverser(workdir: Path, **settings) -> None:
    """`configs/seq2seq.py` shrunk to one epoch of 100 lists and a few units; `settings`
    override the rest (lengths, attention)."""
    config = seq2seq_configs.get_config()
    config.update(
        num_samples=100,
        num_epochs=1,
        hidden_size=8,
        embedding_size=4,
        attention_size=8,
        batch_size=50,
        eval_batch_size=50,
        num_attention_examples=1,
        **settings,
    )
    config.test_lengths = ()
    seq2seq_train.train_and_evaluate(config, workdir)


@pytest.fixture(scope="session")
def readme_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`runs/` after the README's two trainings: `runs/tiny_mnist/` and `runs/seq2seq/`.

    Trained once per test session however many modules import this fixture (pytest keeps one
    copy of a session fixture per module that names it, so the second finds the files).
    """
    root = tmp_path_factory.getbasetemp() / "readme_runs"
    runs = root / "runs"
    results = (runs / f"{CLASSIFIER}_results.json", runs / f"{REVERSER}_results.json")
    if not all(path.exists() for path in results):
        train_classifier(runs / "tiny_mnist", root / "data")
        low, high = REVERSER_LENGTHS
        train_reverser(runs / "seq2seq", seq_len=high, min_seq_len=low)
    return runs
