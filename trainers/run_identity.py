"""A resumed run must be the run its results describe.

Every checkpoint carries the resolved config it was trained with. On resume, each key that
changes what is trained (model, data, seed, batch size, every recipe key) must match, or the
run stops and says which keys differ; keys that only change how a run is watched or executed
(logging, evaluation batch size, caches, where the data files are read from, a larger
`num_epochs`) may change, and the change is recorded with the epoch it took effect. A larger
`num_epochs` is refused too when the learning-rate schedule spans the run, since it would
stretch the schedule of the epochs already trained.

A checkpoint written before a recipe key existed was trained with the study's value of it
(`trainers.recipes.STUDY_RECIPE`), so it resumes under a config that says so.
"""

import json
from typing import Any

import ml_collections
from absl import logging

from jax_models.errors import UserError
from trainers.recipes import STUDY_RECIPE, schedule_spans_run

# Keys that never change the trained weights, for both trainers. A key not listed here is part
# of the run's identity, including keys a later version of the code adds.
EXECUTION_KEYS = frozenset(
    {
        "num_epochs",  # may grow; a smaller value than already trained is refused
        "log_every_steps",
        "eval_batch_size",
        "compilation_cache_dir",
        "distributed",
        "data_dir",  # the data's content is checked instead, by its digest
        "data_source",
        "data_mirror",
        "tfds_data_dir",
        "divergence_factor",
        "steps_per_call",  # the same steps in the same order; at most their rounding differs
        "num_attention_examples",  # seq2seq: figure only
        "test_lengths",  # seq2seq: extra test sets, read after training
    }
)
_MISSING = "(absent)"


def _json_form(config: ml_collections.ConfigDict | dict) -> dict[str, Any]:
    """Plain JSON values, so a tuple in the config equals the list a checkpoint stored."""
    as_dict = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
    return json.loads(json.dumps(as_dict))


def _with_study_recipe(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """`saved`, with the study's value for each recipe key it predates (a classifier's only)."""
    if current.get("task", "classification") != "classification":
        return saved
    return {**STUDY_RECIPE, **saved}


def _flag(key: str, value: Any) -> str:
    if isinstance(value, list):
        value = ",".join(map(str, value))
    return f"--config.{key}={value}"


def check_resume(
    saved: dict,
    config: ml_collections.ConfigDict,
    trained_epochs: int,
    workdir: str,
) -> list[dict]:
    """Refuses a resume under another identity; returns the allowed changes to record.

    `saved` is the config the checkpoint of `trained_epochs` was written with. Each returned
    change is `{"epoch": first epoch trained with it, "key", "old", "new"}`.
    """
    new = _json_form(config)
    old = _with_study_recipe(_json_form(saved), new)
    keys = sorted(old.keys() | new.keys())
    differing = [
        key
        for key in keys
        if key not in EXECUTION_KEYS and old.get(key, _MISSING) != new.get(key, _MISSING)
    ]
    if differing:
        listed = ", ".join(
            f"{key} {old.get(key, _MISSING)!r} -> {new.get(key, _MISSING)!r}" for key in differing
        )
        restore = " ".join(_flag(key, old[key]) for key in differing if key in old)
        raise UserError(
            f"{workdir} holds {trained_epochs} epochs trained with other settings ({listed}); "
            f"rerun with the old values ({restore}) or use a new --workdir."
        )
    if config.num_epochs < trained_epochs:
        raise UserError(
            f"{workdir} already holds {trained_epochs} epochs but num_epochs is "
            f"{config.num_epochs}; set --config.num_epochs={trained_epochs} or more, or use a "
            "new --workdir."
        )
    if old["num_epochs"] != new["num_epochs"] and "schedule" in old and schedule_spans_run(old):
        raise UserError(
            f"{workdir} was trained with the {old['schedule']} learning-rate schedule over "
            f"{old['num_epochs']} epochs, and a schedule's length is part of the run; rerun "
            f"with --config.num_epochs={old['num_epochs']} or use a new --workdir."
        )
    return [
        {"epoch": trained_epochs + 1, "key": key, "old": old.get(key), "new": new.get(key)}
        for key in keys
        if old.get(key, _MISSING) != new.get(key, _MISSING)
    ]


def check_same_data(saved_digest: str | None, digest: str, workdir: str) -> None:
    """Refuses to go on training on data whose content differs from the earlier epochs'."""
    if saved_digest is not None and saved_digest != digest:
        raise UserError(
            f"The data differs from what the epochs in {workdir} were trained on (content "
            f"sha256 {saved_digest[:12]}..., now {digest[:12]}...); point --config.data_dir at "
            "the same files or use a new --workdir."
        )


class SameRun:
    """The check a resume hands to `Checkpointer.restore_latest`: it sees the checkpoint's
    metadata before any array is read, and keeps every change so far for the results."""

    def __init__(
        self, config: ml_collections.ConfigDict, workdir: str, data_digest: str | None = None
    ):
        self.config, self.workdir, self.data_digest = config, workdir, data_digest
        self.changes: list[dict] = []

    def __call__(self, step: int, meta: dict) -> None:
        if "config" not in meta:
            logging.warning(
                "The checkpoint of epoch %d predates saved configs; cannot check that this "
                "resume uses the same settings.",
                step,
            )
            return
        changes = check_resume(meta["config"], self.config, step, self.workdir)
        if self.data_digest is not None:
            saved_digest = meta.get("data", {}).get("content_sha256")
            check_same_data(saved_digest, self.data_digest, self.workdir)
        self.changes = meta.get("config_changes", []) + changes
