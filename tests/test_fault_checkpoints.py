"""Damaged checkpoints and failed saves: a warning and the next intact step, or one line.

A CNN run on tiny data with learning_rate 0.1 keeps two steps, epoch 1 (best on validation)
and epoch 3 (latest), so each test can damage one of them and expect the other to be used.
"""

import errno
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs.seq2seq import get_config as seq2seq_config
from jax_models.errors import UserError
from scripts.evaluate import evaluate
from tests.fake_data import write_idx_dataset
from tests.test_pipeline import REPO, strip_timing, tiny_config
from trainers import seq2seq_train
from trainers.checkpoint import Checkpointer
from trainers.train import train_and_evaluate

PREFIX = "lenet5_mnist"
# A failed orbax read leaves reads pending that end later as unraisable exceptions. Scripts drop
# them (trainers.checkpoint replaces Python's default hook); under pytest's hook they would be
# reported as warnings of whichever test runs then.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def array_files(step: Path) -> list[Path]:
    """The data files of checkpoint `step` (some are only a merge's leftovers, never read)."""
    return list((step / "state" / "ocdbt.process_0" / "d").iterdir())


def truncate_array_files(step: Path) -> None:
    """Halves each array data file of checkpoint `step`, as a crash mid-copy would."""
    for data in array_files(step):
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def delete_array_files(step: Path) -> None:
    for data in array_files(step):
        data.unlink()


def emptied(name: str) -> Callable[[Path], None]:
    return lambda step: (step / name).write_text("")


# (damage, the reason the warning gives for it)
DAMAGE = {
    "truncated array files": (truncate_array_files, "unreadable array data"),
    "deleted array files": (delete_array_files, "unreadable array data"),
    "emptied array metadata": (emptied("state/_METADATA"), "unreadable array metadata"),
    "emptied metrics file": (emptied("metrics/metrics"), "missing or unreadable metrics file"),
    "emptied meta file": (emptied("meta/metadata"), "unreadable meta file"),
}


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root, "mnist")
    return root


@pytest.fixture(scope="module")
def config(data_root: Path) -> ml_collections.ConfigDict:
    return tiny_config(data_root, num_epochs=3, learning_rate=0.1)


@pytest.fixture(scope="module")
def trained(config, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("run")
    results = train_and_evaluate(config, str(workdir))
    steps = sorted(p.name for p in (workdir / f"{PREFIX}_model").iterdir())
    assert (steps, results["best_epoch"]) == (["1", "3"], 1), "the tests need best != latest"
    return workdir, results


def copy_run(trained: tuple[Path, dict], workdir: Path, *, results: bool) -> Path:
    """A copy of the trained run's checkpoints (and results file); its checkpoint directory."""
    source, _ = trained
    shutil.copytree(source / f"{PREFIX}_model", workdir / f"{PREFIX}_model")
    if results:
        shutil.copy(source / f"{PREFIX}_results.json", workdir)
    return workdir / f"{PREFIX}_model"


# Checkpointer on its own, each kind of damage: fast, no model.


def tree(step: int) -> dict:
    return {"w": jnp.asarray(np.random.default_rng(step).normal(size=(64, 64)), jnp.float32)}


@pytest.fixture
def two_steps(tmp_path: Path) -> Path:
    """Epoch 1 best on validation, epoch 2 latest."""
    checkpointer = Checkpointer(tmp_path / "ckpt")
    for step, accuracy in ((1, 0.9), (2, 0.5)):
        checkpointer.save(step, tree(step), {"val_accuracy": accuracy}, {"history": [step]})
    checkpointer.close()
    return tmp_path / "ckpt"


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_latest_step_resumes_from_the_one_before(two_steps, damage, caplog):
    corrupt, reason = DAMAGE[damage]
    corrupt(two_steps / "2")
    checkpointer = Checkpointer(two_steps)
    step, state, meta = checkpointer.restore_latest(lambda _: tree(0))
    assert (step, meta) == (1, {"history": [1]})
    np.testing.assert_array_equal(state["w"], tree(1)["w"])
    assert warnings_of(caplog) == [
        f"Checkpoint of epoch 2 in {two_steps} is damaged ({reason}); resuming from epoch 1: "
        "epoch 2 will be trained again."
    ]
    # Deleted, so that the resumed run can save epoch 2 again.
    checkpointer.save(2, tree(2), {"val_accuracy": 0.5})
    assert sorted(path.name for path in two_steps.iterdir()) == ["1", "2"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_best_step_evaluates_the_best_intact_one(two_steps, damage, caplog):
    corrupt, reason = DAMAGE[damage]
    corrupt(two_steps / "1")
    step, state = Checkpointer(two_steps).restore_best(lambda _: tree(0))
    if damage == "emptied meta file":  # evaluation needs no history: epoch 1 is intact for it
        assert (step, warnings_of(caplog)) == (1, [])
        return
    assert step == 2
    np.testing.assert_array_equal(state["w"], tree(2)["w"])
    # With its metrics unreadable, nothing says epoch 1 was the best.
    recorded = "" if damage == "emptied metrics file" else ", instead of this recorded best"
    assert warnings_of(caplog) == [
        f"Checkpoint of epoch 1 in {two_steps} is damaged ({reason}); using epoch 2, the best "
        f"intact checkpoint{recorded}."
    ]


def test_no_intact_step_is_one_line_naming_the_directory(two_steps):
    truncate_array_files(two_steps / "1")
    emptied("metrics/metrics")(two_steps / "2")
    checkpointer = Checkpointer(two_steps)
    expected = (
        f"No intact checkpoint in {two_steps} (epoch 1: unreadable array data; epoch 2: missing "
        "or unreadable metrics file); delete that directory and train again."
    )
    for restore in (checkpointer.restore_latest, checkpointer.restore_best):
        with pytest.raises(UserError) as error:
            restore(lambda _: tree(0))
        assert str(error.value) == expected


def test_a_different_model_is_a_mismatch_not_damage(two_steps):
    with pytest.raises(UserError, match=r"epoch 2 .* does not match this model"):
        Checkpointer(two_steps).restore_latest(lambda _: {"w": jnp.zeros((64, 32))})


def test_full_disk_inside_tensorstore_is_one_line(two_steps, monkeypatch):
    """tensorstore reports ENOSPC as a ValueError carrying the OS error code."""

    async def disk_full(*args, **kwargs):
        raise ValueError(
            'RESOURCE_EXHAUSTED: Error writing "w/0.0": Failed to write 4096 bytes: No space '
            "left on device [os_error_code='28']"
        )

    checkpointer = Checkpointer(two_steps)
    monkeypatch.setattr(ocp.StandardCheckpointHandler, "async_save", disk_full)
    with pytest.raises(UserError) as error:
        checkpointer.save(3, tree(3), {"val_accuracy": 0.1})
    assert str(error.value) == (
        f"Cannot save the checkpoint of epoch 3 in {two_steps}: No space left on device; the "
        "checkpoint of epoch 2 stays intact. Free space or fix permissions, then rerun the same "
        "command to resume."
    )
    monkeypatch.undo()
    assert Checkpointer(two_steps).restore_latest(lambda _: tree(0))[0] == 2


# The trainers and scripts.evaluate.


def test_truncated_latest_step_trains_again_from_the_step_before(trained, config, tmp_path, caplog):
    checkpoints = copy_run(trained, tmp_path, results=False)
    truncate_array_files(checkpoints / "3")
    resumed = train_and_evaluate(config, str(tmp_path))
    assert (
        f"Checkpoint of epoch 3 in {checkpoints} is damaged (unreadable array data); resuming "
        "from epoch 1: epochs 2 to 3 will be trained again."
    ) in warnings_of(caplog)
    assert strip_timing(resumed) == strip_timing(trained[1])


def test_full_disk_while_saving_is_one_line_and_resumes_once_freed(
    trained, config, tmp_path, monkeypatch
):
    real_save = ocp.StandardCheckpointHandler.async_save
    saves = []

    async def disk_full_at_epoch_two(self, directory, *args, **kwargs):
        saves.append(directory)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(directory))
        return await real_save(self, directory, *args, **kwargs)

    monkeypatch.setattr(ocp.StandardCheckpointHandler, "async_save", disk_full_at_epoch_two)
    checkpoints = tmp_path / f"{PREFIX}_model"
    with pytest.raises(UserError) as error:
        train_and_evaluate(config, str(tmp_path))
    assert str(error.value) == (
        f"Cannot save the checkpoint of epoch 2 in {checkpoints}: No space left on device; the "
        "checkpoint of epoch 1 stays intact. Free space or fix permissions, then rerun the same "
        "command to resume."
    )
    assert Checkpointer(checkpoints).latest_step() == 1  # no half-written epoch 2 counts
    monkeypatch.undo()
    assert strip_timing(train_and_evaluate(config, str(tmp_path))) == strip_timing(trained[1])


@pytest.mark.parametrize("damage", ["truncated array files", "emptied metrics file"])
def test_evaluate_uses_the_best_intact_step(trained, config, tmp_path, damage, caplog):
    checkpoints = copy_run(trained, tmp_path, results=True)
    corrupt, reason = DAMAGE[damage]
    corrupt(checkpoints / "1")
    assert evaluate(config, str(tmp_path))["best_epoch"] == 3
    assert any(
        message.startswith(
            f"Checkpoint of epoch 1 in {checkpoints} is damaged ({reason}); using "
            "epoch 3, the best intact checkpoint"
        )
        for message in warnings_of(caplog)
    )


def run_evaluate(workdir: Path, data_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.evaluate",
            "--config=configs/default.py",
            f"--workdir={workdir}",
            f"--config.data_dir={data_root}",
            "--config.num_epochs=3",
            "--config.batch_size=16",
            "--config.eval_batch_size=32",
            "--config.learning_rate=0.1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_evaluate_cli_notes_a_fallback_and_fails_in_one_line_without_one(
    trained, data_root, tmp_path
):
    checkpoints = copy_run(trained, tmp_path, results=True)
    truncate_array_files(checkpoints / "1")
    fallback = run_evaluate(tmp_path, data_root)
    assert fallback.returncode == 0, fallback.stderr[-2000:]
    assert "best epoch 3  (not the recorded best: results file says 1)" in fallback.stdout
    assert "Checkpoint of epoch 1 in" in fallback.stderr
    assert "Traceback" not in fallback.stderr

    emptied("state/_METADATA")(checkpoints / "3")
    nothing = run_evaluate(tmp_path, data_root)
    assert nothing.returncode == 2
    assert "Traceback" not in nothing.stderr
    errors = [line for line in nothing.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: No intact checkpoint in {checkpoints} (epoch 1: unreadable array data; epoch 3: "
        "unreadable array metadata); delete that directory and train again."
    ]


def test_seq2seq_resumes_from_the_step_before_a_damaged_one(tmp_path, caplog):
    config = seq2seq_config()
    config.update(
        seq_len=3,
        num_samples=256,
        num_epochs=1,
        batch_size=32,
        eval_batch_size=64,
        hidden_size=8,
        embedding_size=4,
        attention_size=8,
        test_lengths=(),
        num_attention_examples=1,
    )
    seq2seq_train.train_and_evaluate(config, tmp_path / "one")
    config.num_epochs = 2
    workdir = tmp_path / "two"
    original = seq2seq_train.train_and_evaluate(config, workdir)
    checkpoints = workdir / "seq2seq_model"
    if not (checkpoints / "1").exists():  # epoch 2 was better: bring epoch 1 back
        shutil.copytree(tmp_path / "one" / "seq2seq_model" / "1", checkpoints / "1")
    (workdir / "seq2seq_results.json").unlink()  # else the run counts as finished
    # Not its array files: tensorstore may serve this process the ones it wrote from its cache.
    emptied("state/_METADATA")(checkpoints / "2")
    resumed = seq2seq_train.train_and_evaluate(config, workdir)
    assert (
        f"Checkpoint of epoch 2 in {checkpoints} is damaged (unreadable array metadata); "
        "resuming from epoch 1: epoch 2 will be trained again."
    ) in warnings_of(caplog)
    for key in ("train_loss", "val_loss", "val_token_accuracy"):
        assert resumed["history"][key] == original["history"][key]
    assert json.loads((workdir / "seq2seq_results.json").read_text())["epochs"] == 2
