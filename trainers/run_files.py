"""The files a run keeps in its workdir, and how they are written, in this one place.

A classifier run, prefix `{model}_{dataset}`, writes `{prefix}_results.json`,
`{prefix}_curves.png` and checkpoints in `{prefix}_model/`; the seq2seq run, prefix `seq2seq`,
writes `seq2seq_results.json`, `seq2seq_loss.png`, `seq2seq_attention.png` when it uses
attention, and `seq2seq_model/`. The comparison study keeps one workdir per seed,
`{study}/seed_{S}/`. The trainers write these files, and `scripts.train`, `scripts.evaluate`,
the study's grid and report, and the app find them, all through here.
"""

import json
import os
import platform
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import flax
import jax
import ml_collections
import optax
from absl import logging

from jax_models.errors import UserError
from trainers.checkpoint import Checkpointer, checkpoint_dir
from trainers.run_identity import check_resume

RESULTS_SUFFIX = "_results.json"
LOCK_NAME = ".run.lock"


def run_prefix(config: ml_collections.ConfigDict) -> str:
    """What a run's file names start with: `{model}_{dataset}`, or `seq2seq`."""
    if config.get("task", "classification") == "seq2seq":
        return "seq2seq"
    return f"{config.model}_{config.dataset}"


def results_path(workdir: str | Path, prefix: str) -> Path:
    return Path(workdir) / f"{prefix}{RESULTS_SUFFIX}"


def seed_workdir(study_dir: str | Path, seed: int) -> Path:
    """The workdir of one seed of the comparison study."""
    return Path(study_dir) / f"seed_{seed}"


@dataclass(frozen=True)
class RunFiles:
    """Paths of one run's results, figures and checkpoint directory."""

    results: Path
    curves: Path
    checkpoints: Path
    attention: Path | None = None  # seq2seq with attention only


def run_files(config: ml_collections.ConfigDict, workdir: str | Path) -> RunFiles:
    """The files the run of `config` writes in `workdir` (spelled as given, for printing)."""
    workdir = Path(workdir)
    prefix = run_prefix(config)
    if prefix == "seq2seq":
        return RunFiles(
            results=results_path(workdir, prefix),
            curves=workdir / f"{prefix}_loss.png",
            checkpoints=checkpoint_dir(workdir, prefix),
            attention=workdir / f"{prefix}_attention.png" if config.use_attention else None,
        )
    return RunFiles(
        results=results_path(workdir, prefix),
        curves=workdir / f"{prefix}_curves.png",
        checkpoints=checkpoint_dir(workdir, prefix),
    )


def prepare_workdir(workdir: str | Path) -> Path:
    """Creates `workdir` and proves it writable before any minute of training is spent."""
    path = Path(workdir).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_test_{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise UserError(
            f"Cannot write to workdir {path} ({error.strerror or error}); "
            "choose a writable --workdir."
        ) from error
    return path


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turns a failed write (disk full, permissions) into one line naming the file and cause."""
    try:
        yield
    except OSError as error:
        raise UserError(
            f"Cannot write {path} ({error.strerror or error}); free some space or fix the "
            "permissions, then rerun the same command: the checkpoints already saved are intact."
        ) from error


def write_json(path: Path, payload: dict) -> None:
    """Writes through a temporary file so a crash never leaves half a results file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path):
        try:
            tmp.write_text(json.dumps(payload, indent=2))
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)


def environment() -> dict:
    """What ran the experiment, recorded beside its results."""
    device = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "python": platform.python_version(),
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
    }


def finished_results(files: RunFiles, num_epochs: int) -> dict | None:
    """The results of a run whose latest checkpoint is exactly `num_epochs`, else None.

    The results file must describe that checkpoint (its `epochs` equal the checkpoint's step):
    a run killed between its last save and writing results leaves an older file, or none, and
    must still evaluate. Every process of a multi-host run reads the same shared workdir, as
    orbax's checkpoints already require, so all take the same branch.
    """
    if not (files.results.is_file() and files.checkpoints.is_dir()):
        return None
    checkpointer = Checkpointer(files.checkpoints)
    latest = checkpointer.latest_step()
    checkpointer.close()
    if latest is None or latest != num_epochs:
        return None
    try:
        results = json.loads(files.results.read_text())
    except (OSError, ValueError):
        return None  # unreadable: evaluate again and rewrite it
    return results if results.get("epochs") == latest else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


class WorkdirLock:
    """One run per workdir: a lock file holding the process id and host of the run.

    A second run on the same workdir is refused with the holder's name. A lock left by a
    process that died (kill -9, power loss) on this host is taken over with a warning; one held
    from another host cannot be checked, so it is refused with the way to clear it by hand.
    Only process 0 of a multi-host run takes it: the others follow process 0.
    """

    def __init__(self, workdir: Path, enabled: bool = True):
        self.path = workdir / LOCK_NAME
        self.enabled = enabled

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None  # vanished, or written by a process killed mid-write

    def _stale(self, holder: dict | None) -> bool:
        if holder is None:
            return True
        same_host = holder.get("host") == socket.gethostname()
        return same_host and not _process_alive(int(holder.get("pid", -1)))

    def __enter__(self) -> "WorkdirLock":
        if not self.enabled:
            return self
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv),
        }
        for _ in range(3):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if not self._stale(holder):
                    raise UserError(
                        f"{self.path.parent} is in use by process {holder['pid']} on "
                        f"{holder['host']} (started {holder.get('started', '?')}); wait for it "
                        f"to finish or choose another --workdir (if that process is gone, "
                        f"delete {self.path})."
                    ) from None
                who = f"process {holder['pid']} on {holder['host']}" if holder else "a process"
                logging.warning(
                    "Taking over %s: %s left it and is no longer running.", self.path, who
                )
                self.path.unlink(missing_ok=True)
                continue
            with writing(self.path), os.fdopen(descriptor, "w") as f:
                json.dump(me, f)
            return self
        raise UserError(f"Could not take the lock {self.path}; another run keeps taking it.")

    def __exit__(self, *exc_info) -> None:
        if self.enabled and (self._holder() or {}).get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)


@contextmanager
def claimed_run(
    config: ml_collections.ConfigDict, workdir: str | Path
) -> Iterator[tuple[RunFiles, dict | None]]:
    """Holds `workdir` for one run: yields its files and, when the run already finished there,
    its results (checked to be the same run; `None` while there is training to do).

    What both trainers' `train_and_evaluate` do first: create the workdir, lock it (process 0
    only), and tell a finished run from one to start or resume.
    """
    path = prepare_workdir(workdir)
    with WorkdirLock(path, enabled=jax.process_index() == 0):
        files = run_files(config, path)
        finished = finished_results(files, config.num_epochs)
        if finished is not None:
            check_resume(finished["config"], config, finished["epochs"], str(workdir))
            logging.info(
                "%s in %s already finished %d of %d epochs; nothing to train.",
                run_prefix(config),
                workdir,
                finished["epochs"],
                config.num_epochs,
            )
        yield files, finished
