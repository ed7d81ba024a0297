"""The project's one checkpoint format: an orbax CheckpointManager keeping latest and best.

The latest checkpoint makes a killed run resumable; the best one on validation is what
evaluation and the app restore. Both the CNN and the seq2seq trainers save through here.
"""

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jax_models.errors import UserError

PyTree = Any


def checkpoint_dir(workdir: str | Path, prefix: str) -> Path:
    """Where run `prefix` (e.g. `lenet5_mnist`, `seq2seq`) keeps its checkpoints in `workdir`."""
    return Path(workdir) / f"{prefix}_model"


class Checkpointer:
    """Saves a pytree of training state once per epoch with its validation metrics."""

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
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                preservation_policy=policy,
                best_fn=metric,
                best_mode="max",
                enable_async_checkpointing=False,
                # A run killed while saving leaves a half-written step behind; drop it on resume.
                cleanup_tmp_directories=True,
            ),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        return self._manager.best_step()

    def save(
        self, step: int, state: PyTree, metrics: dict[str, float], meta: dict | None = None
    ) -> None:
        """Saves arrays in `state` and JSON-able `meta` (e.g. the history) at `step`."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta or {})
        )
        self._manager.save(step, args=args, metrics=metrics)
        self._manager.wait_until_finished()

    def meta(self, step: int) -> dict:
        """The JSON metadata saved with `step`."""
        return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]

    def restore(self, step: int, like: PyTree) -> PyTree:
        """Restores `step` into the structure, shapes and shardings of `like`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            )
            return restored["state"]
        except (ValueError, KeyError, FileNotFoundError) as error:
            raise UserError(
                f"Checkpoint step {step} in {self.directory} does not match this model "
                f"({type(error).__name__}); delete the directory or train with the config "
                "that wrote it."
            ) from error

    def close(self) -> None:
        self._manager.close()
