"""End-to-end tests of the CNN pipeline on tiny generated data: train, evaluate, resume."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from flax import nnx

import jax_models
from configs import default
from jax_models.errors import UserError
from scripts.evaluate import evaluate
from tests.fake_data import write_cifar_dataset, write_idx_dataset
from trainers import train as train_lib
from trainers.metrics import TrainMetrics
from trainers.train import train_and_evaluate

REPO = Path(__file__).resolve().parents[1]


class TinyBatchNormDropout(nnx.Module):
    """Conv, BatchNorm and dropout: the state a resumed run must restore exactly."""

    def __init__(self, *, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs):
        self.conv = nnx.Conv(input_shape[-1], 4, (3, 3), strides=(2, 2), rngs=rngs)
        self.norm = nnx.BatchNorm(4, rngs=rngs)
        self.dropout = nnx.Dropout(0.3, rngs=rngs)
        features = 4 * -(-input_shape[0] // 2) * -(-input_shape[1] // 2)
        self.head = nnx.Linear(features, num_classes, rngs=rngs)

    def __call__(self, x):
        x = self.dropout(nnx.relu(self.norm(self.conv(x))))
        return self.head(x.reshape(x.shape[0], -1))


jax_models.register("tiny_bn_dropout")(TinyBatchNormDropout)


def tiny_config(data_dir: Path, **overrides):
    config = default.get_config()
    config.data_dir = str(data_dir)
    config.data_source = "files"
    config.num_epochs = 1
    config.batch_size = 16
    config.eval_batch_size = 32
    config.log_every_steps = 4
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root, "mnist")
    return root


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("run")
    config = tiny_config(data_root, num_epochs=3)
    return workdir, train_and_evaluate(config, str(workdir))


def test_train_writes_results_checkpoint_and_curves(trained):
    workdir, results = trained
    prefix = "lenet5_mnist"
    on_disk = json.loads((workdir / f"{prefix}_results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert (workdir / f"{prefix}_curves.png").stat().st_size > 1000
    assert (workdir / f"{prefix}_model").is_dir()
    for key in ("test_loss", "test_accuracy", "precision", "recall", "f1", "images_per_s"):
        assert np.isfinite(results[key]), key
    assert set(results["weighted"]) == {"precision", "recall", "f1"}
    assert set(results["per_class"]) == {"names", "precision", "recall", "f1", "support"}
    confusion = np.asarray(results["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 60
    assert results["per_class"]["support"] == confusion.sum(axis=1).tolist()
    assert np.isclose(results["test_accuracy"], np.trace(confusion) / 60)
    history = results["history"]
    assert all(len(history[key]) == 3 for key in train_lib.HISTORY_KEYS)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert results["params"] == 61706 and results["flops"] > 0
    assert results["config"]["model"] == "lenet5"
    assert results["environment"]["device_count"] >= 1
    # Generated files, not MNIST's: the results say so.
    assert results["data"]["source"] == "files"
    assert results["data"]["matches_official_release"] is False


def test_evaluate_reproduces_train_figures_exactly(trained, data_root):
    workdir, results = trained
    metrics = evaluate(tiny_config(data_root, num_epochs=3), str(workdir))
    for key in ("test_loss", "test_accuracy", "precision", "recall", "f1", "confusion_matrix"):
        assert metrics[key] == results[key], key


def test_tfds_source_under_mock_data(tmp_path):
    config = tiny_config(tmp_path / "no_files", data_source="tfds", dataset="cifar10")
    with tfds.testing.mock_data(num_examples=48):
        results = train_and_evaluate(config, str(tmp_path / "run"))
    assert results["dataset"] == "cifar10"
    assert results["params"] == jax_models.complexity("lenet5", (32, 32, 3))["params"]
    assert (tmp_path / "run" / "lenet5_cifar10_results.json").is_file()


def test_auto_source_prefers_files(tmp_path):
    written = write_idx_dataset(tmp_path, "fashion_mnist", gz=False)
    loaded = train_lib.load_dataset("fashion_mnist", str(tmp_path), "auto")
    info, splits = loaded.info, loaded.splits
    assert info.num_classes == 10
    np.testing.assert_array_equal(splits["test"].images, written["test"][0])
    np.testing.assert_array_equal(splits["train"].labels, written["train"][1])


@pytest.mark.parametrize("extracted", [False, True])
def test_cifar_files_round_trip(tmp_path, extracted):
    written = write_cifar_dataset(tmp_path, extracted=extracted)
    splits = train_lib.load_dataset("cifar10", str(tmp_path), "files").splits
    np.testing.assert_array_equal(splits["train"].images, written["train"][0])
    np.testing.assert_array_equal(splits["test"].labels, written["test"][1])
    assert splits["train"].images.shape == (200, 32, 32, 3)


def strip_timing(results: dict) -> dict:
    """Everything a resumed run must reproduce: all but wall-clock figures."""
    timing = {"epoch_time_s", "train_time_s", "images_per_s", "compile_s"}
    stripped = {k: v for k, v in results.items() if k not in timing}
    stripped["history"] = {k: v for k, v in results["history"].items() if k not in timing}
    return stripped


def test_killed_run_resumes_to_the_same_results(data_root, tmp_path, monkeypatch):
    config = tiny_config(data_root, model="tiny_bn_dropout", num_epochs=3)
    uninterrupted = train_and_evaluate(config, str(tmp_path / "a"))

    real_train_epoch = train_lib.train_epoch

    def killed_in_epoch_two(run, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_train_epoch(run, epoch)

    monkeypatch.setattr(train_lib, "train_epoch", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, str(tmp_path / "b"))
    assert sorted(p.name for p in (tmp_path / "b" / "tiny_bn_dropout_mnist_model").iterdir()) == [
        "1"
    ]
    # A kill in the middle of a save leaves a half-written step, which resuming must discard.
    (tmp_path / "b" / "tiny_bn_dropout_mnist_model" / "2.orbax-checkpoint-tmp").mkdir()
    monkeypatch.setattr(train_lib, "train_epoch", real_train_epoch)
    resumed = train_and_evaluate(config, str(tmp_path / "b"))
    assert strip_timing(resumed) == strip_timing(uninterrupted)


def test_same_seed_same_results_other_seed_differs(data_root, tmp_path, trained):
    _, first = trained
    again = train_and_evaluate(tiny_config(data_root, num_epochs=3), str(tmp_path / "same"))
    assert strip_timing(again) == strip_timing(first)
    other = train_and_evaluate(tiny_config(data_root, num_epochs=3, seed=1), str(tmp_path / "o"))
    assert other["history"]["train_loss"] != first["history"]["train_loss"]


def corrupt(path: Path, data: bytes) -> None:
    path.write_bytes(data)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "train-images-idx3-ubyte").unlink(), r"No mnist files in .*expected"),
        (lambda d: corrupt(d / "train-images-idx3-ubyte", b"\0\0\x08\x01" + bytes(12)), "magic"),
        (
            lambda d: corrupt(
                d / "t10k-labels-idx1-ubyte",
                (d / "t10k-labels-idx1-ubyte").read_bytes()[:-5],
            ),
            "truncated or corrupt",
        ),
        (
            lambda d: corrupt(d / "train-labels-idx1-ubyte", b"\0\0\x08\x01\0\0\0\x01" + b"\x63"),
            "240 train images but 1 labels",
        ),
    ],
)
def test_bad_idx_files(tmp_path, damage, message):
    write_idx_dataset(tmp_path, "mnist", gz=False)
    damage(tmp_path / "mnist")
    with pytest.raises(UserError, match=message):
        train_lib.load_dataset("mnist", str(tmp_path), "files")


def test_bad_cifar_files(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "cifar-10-python.tar.gz").write_bytes(b"not a tar archive")
    with pytest.raises(UserError, match="not a readable tar archive"):
        train_lib.load_dataset("cifar10", str(tmp_path), "files")
    write_cifar_dataset(tmp_path, extracted=True)
    batch = tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({b"pixels": []}))
    with pytest.raises(UserError, match=r"test_batch is not a CIFAR-10 python batch"):
        train_lib.load_dataset("cifar10", str(tmp_path), "files")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": "lenet6"}, "Unknown model 'lenet6'; choose one of: .*lenet5"),
        ({"dataset": "svhn"}, "Unknown dataset 'svhn'; choose one of: mnist, fashion_mnist"),
        ({"batch_size": 1000}, "batch_size 1000 is larger than the 216 training examples"),
        ({"data_source": "web"}, "Unknown data_source 'web'"),
        ({"compute_dtype": "float16"}, "compute_dtype 'float16' is not one of float32, bfloat16"),
    ],
)
def test_bad_config_values(data_root, tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        train_and_evaluate(tiny_config(data_root, **overrides), str(tmp_path))


def one_step(compute_dtype: str) -> tuple[nnx.Module, nnx.Module, dict]:
    """A fresh tiny BatchNorm net before and after one train step on a fixed batch."""
    mesh = train_lib.make_mesh()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 12, 12, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, 32).astype(np.int32)
    data = [train_lib.put_replicated(a, mesh) for a in (images, labels, np.arange(32))]
    before = jax_models.create("tiny_bn_dropout", num_classes=10, input_shape=(12, 12, 1))
    model = jax_models.create("tiny_bn_dropout", num_classes=10, input_shape=(12, 12, 1))
    optimizer = train_lib.replicated_adam(model, 1e-3, mesh)
    model.train()
    metrics = train_lib.replicate(TrainMetrics.empty(), mesh)
    metrics = train_lib.train_step(
        model,
        optimizer,
        metrics,
        *data,
        np.int32(0),
        batch_size=32,
        mesh=mesh,
        compute_dtype=compute_dtype,
    )
    return before, model, {k: float(v) for k, v in metrics.compute().items()}


def test_bfloat16_compute_updates_float32_weights_like_float32():
    before, full, full_metrics = one_step("float32")
    _, mixed, mixed_metrics = one_step("bfloat16")
    assert mixed_metrics["loss"] == pytest.approx(full_metrics["loss"], rel=0.02)
    assert mixed_metrics["loss"] != full_metrics["loss"]  # it did compute in bfloat16
    start, full_state, mixed_state = (nnx.state(m) for m in (before, full, mixed))
    floats = [
        (a, b, c)
        for a, b, c in zip(
            *(jax.tree.leaves(s) for s in (start, full_state, mixed_state)), strict=True
        )
        if jnp.issubdtype(c.dtype, jnp.floating)
    ]
    assert all(c.dtype == jnp.float32 for _, _, c in floats)  # master weights and statistics
    np.testing.assert_allclose(mixed.norm.mean[...], full.norm.mean[...], rtol=0.02, atol=1e-3)
    assert not np.allclose(mixed.norm.mean[...], before.norm.mean[...])  # statistics updated
    full_step = np.concatenate([np.ravel(b - a) for a, b, _ in floats])
    mixed_step = np.concatenate([np.ravel(c - a) for a, _, c in floats])
    moved = full_step != 0
    assert moved.mean() > 0.5
    assert np.mean(np.sign(mixed_step[moved]) == np.sign(full_step[moved])) > 0.9


def test_workdir_that_cannot_be_written(data_root, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(UserError, match="Cannot write to workdir .*choose a writable --workdir"):
        train_and_evaluate(tiny_config(data_root), str(blocker / "run"))


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    result = run_cli(
        "scripts.train",
        "--config=configs/default.py",
        f"--workdir={tmp_path / 'run'}",
        f"--config.data_dir={tmp_path}",
        "--config.data_source=files",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: No mnist files in")


def test_cli_on_two_fake_devices_then_evaluate(data_root, tmp_path):
    flags = [
        "--config=configs/default.py",
        f"--workdir={tmp_path}",
        f"--config.data_dir={data_root}",
        "--config.num_epochs=1",
        "--config.batch_size=16",
        "--config.eval_batch_size=25",
    ]
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    trained = run_cli("scripts.train", *flags, env=env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "epoch 1/1" in trained.stderr
    results = json.loads((tmp_path / "lenet5_mnist_results.json").read_text())
    assert results["environment"]["device_count"] == 2
    assert np.asarray(results["confusion_matrix"]).sum() == 60
    evaluated = run_cli("scripts.evaluate", *flags, env=env)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert evaluated.stdout.count("(matches results file)") == 5

    odd_batch = run_cli("scripts.train", *flags, "--config.batch_size=15", env=env)
    assert odd_batch.returncode == 2
    assert "must be a positive multiple of the 2 devices" in odd_batch.stderr
