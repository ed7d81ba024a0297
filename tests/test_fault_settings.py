"""Bad settings and diverging runs end in one line: settings before any data is loaded, a
diverged epoch before it is saved, so the last good checkpoint stays the latest and the best."""

import math
from pathlib import Path

import ml_collections
import pytest

from configs import default
from configs import seq2seq as seq2seq_configs
from jax_models.errors import UserError
from tests.fake_data import write_idx_dataset
from tests.test_pipeline import run_cli, tiny_config
from trainers import seq2seq_train
from trainers import train as train_lib


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root, "mnist")
    return root


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def saved_steps(checkpoints: Path) -> list[str]:
    """The steps on disk; the run keeps the latest and the best, so ["1"] makes epoch 1 both."""
    return sorted(path.name for path in checkpoints.iterdir()) if checkpoints.exists() else []


# Settings: refused before any data is loaded.


class DataLoadingReached(AssertionError):
    """A trainer got as far as loading or generating data."""


@pytest.fixture
def no_data(monkeypatch):
    """Makes loading or generating data fail the test: bad settings must be refused first."""

    def loaded(*args, **kwargs):
        raise DataLoadingReached

    monkeypatch.setattr(train_lib, "load_dataset", loaded)
    monkeypatch.setattr(seq2seq_train, "make_datasets", loaded)


LR = "learning_rate must be a finite number above 0"
SEED = r"seed must be an integer in \[0, 2147483647\]"
CNN_SETTINGS = {
    "negative lr": ({"learning_rate": -1.0}, LR + ", got -1.0"),
    "zero lr": ({"learning_rate": 0.0}, LR),
    "infinite lr": ({"learning_rate": math.inf}, LR + ", got inf"),
    "nan lr": ({"learning_rate": math.nan}, LR + ", got nan"),
    "no epochs": ({"num_epochs": 0}, "num_epochs must be an integer of at least 1, got 0"),
    "log every 0": ({"log_every_steps": 0}, "log_every_steps must be an integer of at least 1"),
    "negative seed": ({"seed": -1}, SEED + ", got -1"),
    "huge seed": ({"seed": 2**40}, SEED),
    "seed beyond int32": ({"seed": 2**31}, SEED),
    "float seed": ({"seed": 1.5}, SEED + ", got 1.5"),
    "validation 0": ({"validation_fraction": 0.0}, "validation_fraction must be a finite number"),
    "validation 1": ({"validation_fraction": 1.0}, r"strictly between 0 and 1, got 1.0"),
    "negative max examples": ({"max_train_examples": -1}, "max_train_examples must be an"),
    "max examples below a batch": ({"max_train_examples": 5}, "fewer than one batch \\(16\\)"),
    "model": ({"model": "lenet6"}, "Unknown model 'lenet6'; choose one of: .*lenet5"),
    "dataset": ({"dataset": "svhn"}, "Unknown dataset 'svhn'; choose one of: mnist"),
    "data source": ({"data_source": "web"}, "Unknown data_source 'web'; choose one of: auto"),
    "divergence factor": ({"divergence_factor": 1.0}, "divergence_factor must be a finite number"),
    "batch size": ({"batch_size": 0}, "batch_size must be an integer of at least 1, got 0"),
    "eval batch size": ({"eval_batch_size": 0}, "eval_batch_size must be an integer of at"),
    "compute dtype": ({"compute_dtype": "float16"}, "compute_dtype 'float16' is not one of"),
    "unknown task": ({"task": "translation"}, "Unknown task 'translation'; use --config=configs"),
}


@pytest.mark.parametrize(("overrides", "message"), CNN_SETTINGS.values(), ids=CNN_SETTINGS)
def test_cnn_setting_is_refused_before_data_loading(no_data, tmp_path, overrides, message):
    # A fresh ConfigDict, so an override may have another type than the default (seed=1.5).
    config = ml_collections.ConfigDict({**tiny_config(tmp_path).to_dict(), **overrides})
    with pytest.raises(UserError, match=message):
        train_lib.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_several_problems_are_one_line(no_data, tmp_path):
    config = tiny_config(tmp_path, learning_rate=-1.0, seed=-1, log_every_steps=0)
    with pytest.raises(UserError) as error:
        train_lib.train_and_evaluate(config, str(tmp_path / "run"))
    message = str(error.value)
    assert "\n" not in message
    assert all(key in message for key in ("learning_rate", "seed", "log_every_steps"))


SEQ2SEQ_SETTINGS = {
    **{
        f"{key} 0": ({key: 0}, f"{key} must be an integer of at least 1, got 0")
        for key in (
            "embedding_size",
            "hidden_size",
            "attention_size",
            "vocab_size",
            "num_samples",
            "batch_size",
            "eval_batch_size",
            "num_epochs",
        )
    },
    "negative lr": ({"learning_rate": -1.0}, LR + ", got -1.0"),
    "negative seed": ({"seed": -1}, SEED),
    "divergence factor": ({"divergence_factor": 0.5}, "divergence_factor must be a finite"),
    "negative attention examples": (
        {"num_attention_examples": -1},
        "num_attention_examples must be an integer of at least 0",
    ),
    "no attention examples": (
        {"num_attention_examples": 0},
        "num_attention_examples must be between 1 and the 1000 held-out lists",
    ),
    "teacher forcing": ({"teacher_forcing_ratio": 1.5}, "teacher_forcing_ratio must be a"),
    "min_seq_len": ({"min_seq_len": 21}, r"min_seq_len must be 0 .* seq_len \(20\), got 21"),
    "test lengths": ({"test_lengths": (20, 0)}, "test_lengths must be positive list lengths"),
    "held-out split": ({"num_samples": 60}, "num_samples 60 with eval_fraction 0.1 leaves 6"),
}


@pytest.mark.parametrize(("overrides", "message"), SEQ2SEQ_SETTINGS.values(), ids=SEQ2SEQ_SETTINGS)
def test_seq2seq_setting_is_refused_before_data(no_data, tmp_path, overrides, message):
    config = seq2seq_configs.get_config()
    config.update(overrides)
    with pytest.raises(UserError, match=message):
        seq2seq_train.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_attention_examples_are_free_without_attention(no_data, tmp_path):
    config = seq2seq_configs.get_config()
    config.update({"use_attention": False, "num_attention_examples": 0})
    with pytest.raises(DataLoadingReached):
        seq2seq_train.train_and_evaluate(config, tmp_path / "run")


def test_config_of_the_other_task_names_the_file_to_use(no_data, tmp_path):
    cnn = default.get_config()
    cnn.task = "seq2seq"
    with pytest.raises(UserError, match=r"task=seq2seq needs the settings of configs/seq2seq.py"):
        seq2seq_train.train_and_evaluate(cnn, tmp_path / "run")
    reverser = seq2seq_configs.get_config()
    reverser.task = "classification"
    with pytest.raises(UserError, match=r"lacks model, dataset, .*--config=configs/default.py\.$"):
        train_lib.train_and_evaluate(reverser, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


CLI_SETTINGS = {
    "log every 0": (
        ["--config.log_every_steps=0"],
        "error: log_every_steps must be an integer of at least 1, got 0; "
        "set e.g. --config.log_every_steps=20.",
    ),
    "seq2seq task on the CNN config": (
        ["--config.task=seq2seq"],
        "error: task=seq2seq needs the settings of configs/seq2seq.py, and this config lacks "
        "seq_len, min_seq_len, vocab_size and 10 more; run with --config=configs/seq2seq.py.",
    ),
}


@pytest.mark.parametrize(("flags", "expected"), CLI_SETTINGS.values(), ids=CLI_SETTINGS)
def test_cli_setting_is_one_error_line_and_exit_2(tmp_path, flags, expected):
    workdir = tmp_path / "run"
    result = run_cli("scripts.train", "--config=configs/default.py", f"--workdir={workdir}", *flags)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert error_lines(result.stderr) == [expected]
    assert not workdir.exists()


# Divergence: stopped before the diverged epoch is saved.

EXPLODED = (
    r"diverged in epoch 1: the train loss \S+e\+\d+ exceeds 23.03, divergence_factor 10 times "
    r"ln\(10\).* no checkpoint was written; lower --config.learning_rate \(now 1e\+06\)"
)


def test_cnn_exploding_loss_stops_the_run(data_root, tmp_path):
    config = tiny_config(data_root, learning_rate=1e6, num_epochs=2)
    with pytest.raises(UserError, match=EXPLODED):
        train_lib.train_and_evaluate(config, str(tmp_path))
    assert not (tmp_path / "lenet5_mnist_results.json").exists()
    assert saved_steps(tmp_path / "lenet5_mnist_model") == []


def test_cli_exploding_loss_is_one_error_line_and_exit_2(data_root, tmp_path):
    result = run_cli(
        "scripts.train",
        "--config=configs/default.py",
        f"--workdir={tmp_path}",
        f"--config.data_dir={data_root}",
        "--config.data_source=files",
        "--config.num_epochs=1",
        "--config.batch_size=16",
        "--config.learning_rate=1e6",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: Training diverged in epoch 1: the train loss")
    assert " exceeds 23.03" in line
    assert not (tmp_path / "lenet5_mnist_results.json").exists()


@pytest.mark.parametrize("loss", [math.nan, 1e30])
def test_cnn_divergence_keeps_the_last_good_checkpoint(data_root, tmp_path, monkeypatch, loss):
    real_train_epoch = train_lib.train_epoch

    def diverging(run, epoch):
        metrics, seconds, first_step_s = real_train_epoch(run, epoch)
        if epoch == 2:
            metrics = {**metrics, "loss": loss}
        return metrics, seconds, first_step_s

    monkeypatch.setattr(train_lib, "train_epoch", diverging)
    with pytest.raises(UserError, match=r"diverged in epoch 2.*last good checkpoint \(epoch 1\)"):
        train_lib.train_and_evaluate(tiny_config(data_root, num_epochs=3), str(tmp_path))
    assert saved_steps(tmp_path / "lenet5_mnist_model") == ["1"]
    assert not (tmp_path / "lenet5_mnist_results.json").exists()


def tiny_seq2seq_config():
    config = seq2seq_configs.get_config()
    config.update(
        {
            "seq_len": 3,
            "num_samples": 320,
            "num_epochs": 3,
            "batch_size": 32,
            "eval_batch_size": 64,
            "embedding_size": 8,
            "hidden_size": 8,
            "attention_size": 8,
            "test_lengths": (),
            "num_attention_examples": 2,
        }
    )
    return config


SEQ2SEQ_DIVERGENCE = {
    "nan train loss": ("train", math.nan, r"the train loss is nan, not a finite number"),
    "exploding train loss": ("train", 1e30, r"the train loss 1e\+30 exceeds 25.65, .* ln\(13\)"),
    "nan validation loss": ("validation", math.nan, r"the validation loss is nan, not a finite"),
}


@pytest.mark.parametrize(
    ("where", "loss", "rule"), SEQ2SEQ_DIVERGENCE.values(), ids=SEQ2SEQ_DIVERGENCE
)
def test_seq2seq_divergence_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, where, loss, rule
):
    """The NaN model never becomes the best checkpoint the app would serve."""
    real_train_epoch, real_evaluate = seq2seq_train.train_epoch, seq2seq_train.evaluate
    epochs = []

    def train_epoch(model, optimizer, train_data, config, epoch):
        epochs.append(epoch)
        mean_loss = real_train_epoch(model, optimizer, train_data, config, epoch)
        return loss if where == "train" and epoch == 2 else mean_loss

    def evaluate(model, dataset, batch_size):
        metrics = real_evaluate(model, dataset, batch_size)
        return {**metrics, "loss": loss} if where == "validation" and epochs[-1] == 2 else metrics

    monkeypatch.setattr(seq2seq_train, "train_epoch", train_epoch)
    monkeypatch.setattr(seq2seq_train, "evaluate", evaluate)
    with pytest.raises(
        UserError, match=rf"diverged in epoch 2: {rule}.*last good checkpoint \(epoch 1\)"
    ):
        seq2seq_train.train_and_evaluate(tiny_seq2seq_config(), tmp_path)
    assert saved_steps(tmp_path / "seq2seq_model") == ["1"]
    assert not (tmp_path / "seq2seq_results.json").exists()
