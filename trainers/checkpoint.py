"""The project's one checkpoint format: an orbax CheckpointManager keeping latest and best.

The latest checkpoint makes a killed run resumable; the best one on validation is what
evaluation and the app restore. Both the CNN and the seq2seq trainers save through here.

A step damaged on disk (a truncated, emptied or deleted file) is passed over with a warning
that says what is lost, for the next intact one; only when none is left does restoring fail,
in one line. A save that fails for want of space or permission is one line too, and leaves
the steps saved before it restorable.
"""

import contextlib
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging
from orbax.checkpoint import checkpoint_managers

from jax_models.errors import UserError

PyTree = Any
T = TypeVar("T")


def checkpoint_dir(workdir: str | Path, prefix: str) -> Path:
    """Where run `prefix` (e.g. `lenet5_mnist`, `seq2seq`) keeps its checkpoints in `workdir`."""
    return Path(workdir) / f"{prefix}_model"


class _DamagedStep(Exception):
    """A step that cannot be read back; the message names the unreadable part."""


class _Manager(ocp.CheckpointManager):
    """orbax's manager, except that an unreadable metrics file reads as no metrics.

    orbax reads every step's metrics when it starts and lets the JSONDecodeError of one emptied
    file through, which would make the whole directory unusable; the Checkpointer treats such a
    step as damaged instead.
    """

    def metrics(self, step: int) -> PyTree | None:
        try:
            return super().metrics(step)
        except ValueError:  # json.JSONDecodeError: an emptied or truncated file
            return None


def _from_orbax(error: BaseException | None) -> bool:
    """Whether `error` comes from orbax's or tensorstore's reads and writes."""
    if error is None:
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return "tensorstore" in str(error).lower() or any("/orbax/" in f.filename for f in frames)


def _orbax_leftover_dropped(unraisable: "sys.UnraisableHookArgs") -> None:
    """sys.unraisablehook, minus what a failed orbax read or write leaves behind.

    orbax starts all of a step's array reads or writes at once and returns at the first
    failure; the others end later in tensorstore's threads, against the event loop orbax has
    closed by then, each printing an `Event loop is closed` or `Exception ignored in
    <coroutine>` traceback at any time up to the interpreter's exit. The failure itself is
    reported in one line instead.
    """
    error = unraisable.exc_value
    loop_closed = unraisable.object is None and str(error) == "Event loop is closed"
    if not (_from_orbax(error) or loop_closed):
        sys.__unraisablehook__(unraisable)


def _not_orbax_leftover(record: logging.LogRecord) -> bool:
    """False for asyncio's `Future exception was never retrieved` of an orbax read or write."""
    return not (record.exc_info and _from_orbax(record.exc_info[1]))


def _drop_orbax_leftovers() -> None:
    """Installs the two filters above, the hook only in place of Python's default one, and
    drops the warning about a read that orbax never got to start."""
    if sys.unraisablehook is sys.__unraisablehook__:
        sys.unraisablehook = _orbax_leftover_dropped
    logging.getLogger("asyncio").addFilter(_not_orbax_leftover)
    warnings.filterwarnings(
        "ignore", "coroutine '_read_array_index_and_device_put' was never awaited", RuntimeWarning
    )


def _below_error(record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR


@contextlib.contextmanager
def _orbax_errors_dropped() -> Iterator[None]:
    """Keeps orbax's own error logs, each with a tensorstore traceback, off the terminal while
    a save runs: a failed save is reported in one line instead."""
    logger = absl_logging.get_absl_logger()
    logger.addFilter(_below_error)
    try:
        yield
    finally:
        logger.removeFilter(_below_error)


def _read_or_damaged(read: Callable[[], T], damage: str) -> T:
    """`read()`, or `_DamagedStep(damage)` when it fails."""
    # Any exception: orbax raises a bare Exception for an array that tensorstore cannot read,
    # ValueError for a file it cannot decode, OSError for one that is gone.
    with contextlib.suppress(Exception):
        return read()
    raise _DamagedStep(damage)


def _os_cause(error: OSError | ValueError) -> str | None:
    """`No space left on device` for an OSError or for the ValueError tensorstore raises for
    one (`... [os_error_code='28']`); None for any other error."""
    if isinstance(error, OSError):
        return error.strerror or str(error)
    code = re.search(r"os_error_code='(\d+)'", str(error))
    return os.strerror(int(code[1])) if code else None


def _layout(tree: PyTree) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Leaf shapes by path: what a saved tree and the tree to restore it into must share.

    A typed PRNG key counts by the shape of its key data, which is what orbax stores.
    """

    def shape(leaf: Any) -> tuple[int, ...]:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        return tuple(getattr(leaf, "shape", ()))

    return {path: shape(leaf) for path, leaf in ocp.tree.to_flat_dict(tree).items()}


class Checkpointer:
    """Saves a pytree of training state once per epoch with its validation metrics.

    Steps are epochs. Restoring takes a `like(step)` function giving the structure, shapes and
    shardings to restore `step` into, as the seq2seq history grows with the epoch.
    """

    def __init__(self, directory: str | Path, *, best_metric: str = "val_accuracy"):
        def metric(metrics: dict[str, float]) -> float:
            return metrics[best_metric]

        policy = checkpoint_managers.AnyPreservationPolicy(
            [
                checkpoint_managers.LatestN(n=1),
                checkpoint_managers.BestN(get_metric_fn=metric, n=1),
            ]
        )
        self.directory = Path(directory).absolute()
        self._metric = metric
        _drop_orbax_leftovers()
        self._manager = _Manager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                preservation_policy=policy,
                best_fn=metric,
                best_mode="max",
                enable_async_checkpointing=False,
                # A run killed or failing while saving leaves a half-written step behind in a
                # temporary directory, never counted as a step; drop it on the next start.
                cleanup_tmp_directories=True,
            ),
        )

    def latest_step(self) -> int | None:
        """The newest step on disk, intact or not."""
        return self._manager.latest_step()

    def save(
        self, step: int, state: PyTree, metrics: dict[str, float], meta: dict | None = None
    ) -> None:
        """Saves arrays in `state` and JSON-able `meta` (e.g. the history) at `step`.

        A full disk or a permission error is a UserError; the steps saved before stay intact.
        """
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta or {})
        )
        previous = self._manager.latest_step()
        try:
            with _orbax_errors_dropped():
                self._manager.save(step, args=args, metrics=metrics)
                self._manager.wait_until_finished()
            return
        except (OSError, ValueError) as error:
            cause = _os_cause(error)
            if cause is None:
                raise
        kept = (
            "no earlier checkpoint exists"
            if previous is None
            else f"the checkpoint of epoch {previous} stays intact"
        )
        raise UserError(
            f"Cannot save the checkpoint of epoch {step} in {self.directory}: {cause}; {kept}. "
            "Free space or fix permissions, then rerun the same command to resume."
        )

    def restore_latest(
        self,
        like: Callable[[int], PyTree],
        check: Callable[[int, dict], None] = lambda step, meta: None,
    ) -> tuple[int, PyTree, dict] | None:
        """(step, state, meta) of the newest intact step; None when there is no step yet.

        `check(step, meta)` sees each step's metadata before its arrays are read, so a resume
        under another config is refused by the trainer's own words, not by a shape mismatch.
        Damaged steps newer than the one restored are deleted, with a warning each, so that
        training repeats them; with no intact step left, a UserError.
        """
        damaged: dict[int, str] = {}
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                meta = self._read_meta(step)
                check(step, meta)
                state = self._read(step, like(step))
            except _DamagedStep as damage:
                damaged[step] = str(damage)
                continue
            for lost, reason in damaged.items():
                again = f"epoch {lost}" if lost == step + 1 else f"epochs {step + 1} to {lost}"
                absl_logging.warning(
                    "%s; resuming from epoch %d: %s will be trained again.",
                    self._damaged(lost, reason),
                    step,
                    again,
                )
                self._manager.delete(lost)
            return step, state, meta
        if damaged:
            raise self._nothing_intact(damaged)
        return None

    def restore_best(self, like: Callable[[int], PyTree]) -> tuple[int, PyTree] | None:
        """(step, state) of the intact step best on validation; None when there is no step.

        Warns about each damaged step passed over, and whether it was the recorded best; with
        no intact step left, a UserError.
        """
        scores = {step: self._manager.metrics(step) for step in self._manager.all_steps()}
        if not scores:
            return None
        damaged = {
            step: "missing or unreadable metrics file"
            for step, metrics in scores.items()
            if metrics is None
        }
        # Best first; of equal ones the latest, as orbax's best_step picks.
        ranked = sorted(
            (step for step in scores if step not in damaged),
            key=lambda step: (self._metric(scores[step]), step),
            reverse=True,
        )
        for step in ranked:
            try:
                state = self._read(step, like(step))
            except _DamagedStep as damage:
                damaged[step] = str(damage)
                continue
            for lost, reason in damaged.items():
                instead = ", instead of this recorded best" if lost == ranked[0] else ""
                absl_logging.warning(
                    "%s; using epoch %d, the best intact checkpoint%s.",
                    self._damaged(lost, reason),
                    step,
                    instead,
                )
            return step, state
        raise self._nothing_intact(damaged)

    def _read(self, step: int, like: PyTree) -> PyTree:
        """`step` restored into `like`; `_DamagedStep` when part of it cannot be read."""
        if self._manager.metrics(step) is None:
            raise _DamagedStep("missing or unreadable metrics file")
        handler = ocp.StandardCheckpointHandler()
        path = self.directory / str(step) / "state"  # orbax's step and item names
        stored = _read_or_damaged(lambda: handler.metadata(path).tree, "unreadable array metadata")
        if _layout(stored) != _layout(like):
            raise UserError(
                f"Checkpoint of epoch {step} in {self.directory} does not match this model "
                "(other arrays or shapes); delete the directory or train with the config that "
                "wrote it."
            )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        return _read_or_damaged(
            lambda: self._manager.restore(step, args=args)["state"], "unreadable array data"
        )

    def _read_meta(self, step: int) -> dict:
        """The JSON metadata saved with `step`; `_DamagedStep` when it cannot be read."""
        args = ocp.args.Composite(meta=ocp.args.JsonRestore())
        return _read_or_damaged(
            lambda: self._manager.restore(step, args=args)["meta"], "unreadable meta file"
        )

    def _damaged(self, step: int, reason: str) -> str:
        return f"Checkpoint of epoch {step} in {self.directory} is damaged ({reason})"

    def _nothing_intact(self, damaged: dict[int, str]) -> UserError:
        steps = "; ".join(f"epoch {step}: {reason}" for step, reason in sorted(damaged.items()))
        return UserError(
            f"No intact checkpoint in {self.directory} ({steps}); delete that directory and "
            "train again."
        )

    def close(self) -> None:
        self._manager.close()
