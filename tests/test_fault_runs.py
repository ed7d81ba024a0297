"""Runs that cannot lie: resume identity, one run per workdir, failed writes.

Fault injection on tiny generated data: each case asserts what a user sees (the exit status
and the single `error:` line, or the warning) and that nothing already saved is harmed.
"""

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jax_models.errors import UserError
from tests.fake_data import write_idx_dataset
from tests.test_fault_settings import tiny_seq2seq_config
from tests.test_pipeline import REPO, run_cli, tiny_config
from trainers import run_files, seq2seq_train
from trainers.run_files import LOCK_NAME, WorkdirLock
from trainers.train import train_and_evaluate


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root, "mnist")
    return root


def write_lock(workdir: Path, pid: int, host: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    holder = {"pid": pid, "host": host, "started": "2026-11-28 05:00:00"}
    (workdir / LOCK_NAME).write_text(json.dumps(holder))


def dead_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# One run per workdir.


def test_lock_is_taken_and_released(tmp_path):
    with WorkdirLock(tmp_path):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize("host", [socket.gethostname(), "other-host"])
def test_a_live_or_foreign_holder_is_refused_by_name(tmp_path, host):
    write_lock(tmp_path, os.getppid(), host)
    with pytest.raises(UserError) as error, WorkdirLock(tmp_path):
        pass
    assert str(error.value) == (
        f"{tmp_path} is in use by process {os.getppid()} on {host} (started 2026-11-28 "
        f"05:00:00); wait for it to finish or choose another --workdir (if that process is "
        f"gone, delete {tmp_path / LOCK_NAME})."
    )
    assert (tmp_path / LOCK_NAME).exists()  # the holder's lock is left alone


def test_a_dead_holders_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    pid = dead_pid()
    write_lock(tmp_path, pid, socket.gethostname())
    with WorkdirLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "left it and is no longer running" in caplog.text
    assert f"process {pid} on {socket.gethostname()}" in caplog.text


def test_two_concurrent_runs_the_second_refused_the_first_unharmed(data_root, tmp_path):
    workdir = tmp_path / "run"
    args = (
        "--config=configs/default.py",
        f"--workdir={workdir}",
        f"--config.data_dir={data_root}",
        "--config.data_source=files",
        "--config.batch_size=16",
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    first = subprocess.Popen(
        [sys.executable, "-m", "scripts.train", *args, "--config.num_epochs=40"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (workdir / LOCK_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = run_cli("scripts.train", *args, "--config.num_epochs=40", env=env)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert second.returncode == 2
    [line] = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in second.stderr
    assert line.startswith(
        f"error: {workdir} is in use by process {first.pid} on {socket.gethostname()} (started "
    )
    assert line.endswith(f"(if that process is gone, delete {workdir / LOCK_NAME}).")
    results = json.loads(run_files.results_path(workdir, "lenet5_mnist").read_text())
    assert results["epochs"] == 40 and not (workdir / LOCK_NAME).exists()


# A resumed run is the run its results describe.


@pytest.fixture(scope="module")
def one_epoch(data_root, tmp_path_factory) -> Path:
    """A workdir trained for one epoch; the refusals below must leave it as it is."""
    workdir = tmp_path_factory.mktemp("one_epoch")
    train_and_evaluate(tiny_config(data_root), str(workdir))
    return workdir


def saved_steps(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / "lenet5_mnist_model").iterdir())


@pytest.mark.parametrize(
    ("key", "old", "new"),
    [
        ("learning_rate", 0.001, 0.01),
        ("seed", 0, 1),
        ("validation_fraction", 0.1, 0.2),
        ("batch_size", 16, 32),
        ("max_train_examples", 0, 100),
        ("compute_dtype", "float32", "bfloat16"),
    ],
)
def test_resume_with_another_recipe_is_refused(one_epoch, data_root, key, old, new):
    results = run_files.results_path(one_epoch, "lenet5_mnist")
    before = results.read_text()
    with pytest.raises(UserError) as error:
        train_and_evaluate(tiny_config(data_root, num_epochs=2, **{key: new}), str(one_epoch))
    assert str(error.value) == (
        f"{one_epoch} holds 1 epochs trained with other settings ({key} {old!r} -> {new!r}); "
        f"rerun with the old values (--config.{key}={old}) or use a new --workdir."
    )
    assert saved_steps(one_epoch) == ["1"] and results.read_text() == before


def test_a_finished_run_rerun_with_another_recipe_is_refused(one_epoch, data_root):
    with pytest.raises(UserError, match=r"learning_rate 0.001 -> 0.5\); rerun with the old"):
        train_and_evaluate(tiny_config(data_root, learning_rate=0.5), str(one_epoch))


def test_fewer_epochs_than_trained_is_refused(data_root, tmp_path):
    train_and_evaluate(tiny_config(data_root, num_epochs=2), str(tmp_path))
    with pytest.raises(UserError) as error:
        train_and_evaluate(tiny_config(data_root, num_epochs=1), str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path} already holds 2 epochs but num_epochs is 1; set --config.num_epochs=2 or "
        "more, or use a new --workdir."
    )


def test_execution_settings_may_change_and_are_recorded(data_root, tmp_path):
    train_and_evaluate(tiny_config(data_root), str(tmp_path))
    resumed = tiny_config(data_root, num_epochs=2, eval_batch_size=64, log_every_steps=2)
    results = train_and_evaluate(resumed, str(tmp_path))
    assert results["epochs"] == 2 and results["config"]["eval_batch_size"] == 64
    assert results["config_changes"] == [
        {"epoch": 2, "key": "eval_batch_size", "old": 32, "new": 64},
        {"epoch": 2, "key": "log_every_steps", "old": 4, "new": 2},
        {"epoch": 2, "key": "num_epochs", "old": 1, "new": 2},
    ]


def test_other_data_under_the_same_settings_is_refused(data_root, tmp_path):
    train_and_evaluate(tiny_config(data_root), str(tmp_path / "run"))
    other = tmp_path / "other_data"
    write_idx_dataset(other, "mnist", num_train=240, num_test=61)
    with pytest.raises(UserError, match="The data differs from what the epochs in .* trained on"):
        train_and_evaluate(tiny_config(other, num_epochs=2), str(tmp_path / "run"))


def test_cli_resume_with_another_recipe_is_one_error_line(one_epoch, data_root):
    result = run_cli(
        "scripts.train",
        "--config=configs/default.py",
        f"--workdir={one_epoch}",
        f"--config.data_dir={data_root}",
        "--config.data_source=files",
        "--config.batch_size=16",
        "--config.num_epochs=2",
        "--config.seed=3",
        env={"JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {one_epoch} holds 1 epochs trained with other settings (seed 0 -> 3); rerun "
        "with the old values (--config.seed=0) or use a new --workdir."
    ]


# Writes that fail (disk full, permissions) after the checkpoints are saved.


def test_results_that_cannot_be_written_are_one_line_and_the_run_resumes(
    data_root, tmp_path, monkeypatch
):
    write_text = Path.write_text

    def disk_full_for_results(self, *args, **kwargs):
        if self.name.endswith("_results.json.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, *args, **kwargs)

    config = tiny_config(data_root)
    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_text", disk_full_for_results)
        with pytest.raises(UserError) as error:
            train_and_evaluate(config, str(tmp_path))
    results = run_files.results_path(tmp_path, "lenet5_mnist")
    assert str(error.value) == (
        f"Cannot write {results} (No space left on device); free some space or fix the "
        "permissions, then rerun the same command: the checkpoints already saved are intact."
    )
    assert not results.exists() and saved_steps(tmp_path) == ["1"]
    assert train_and_evaluate(config, str(tmp_path))["epochs"] == 1
    assert results.is_file()


def seq2seq_config(**overrides):
    config = tiny_seq2seq_config()
    config.update({"num_epochs": 1, **overrides})
    return config


def test_seq2seq_resume_with_another_recipe_is_refused_and_changes_recorded(tmp_path):
    seq2seq_train.train_and_evaluate(seq2seq_config(), tmp_path)
    with pytest.raises(UserError, match=r"hidden_size 8 -> 16\); rerun with the old values"):
        seq2seq_train.train_and_evaluate(seq2seq_config(num_epochs=2, hidden_size=16), tmp_path)
    results = seq2seq_train.train_and_evaluate(
        seq2seq_config(num_epochs=2, eval_batch_size=50), tmp_path
    )
    assert results["config_changes"] == [
        {"epoch": 2, "key": "eval_batch_size", "old": 64, "new": 50},
        {"epoch": 2, "key": "num_epochs", "old": 1, "new": 2},
    ]
