"""Every check of a run's settings that needs no data, for both trainers.

They run first thing in `train_and_evaluate`, so a bad value costs a second and one `error:`
line instead of a traceback after minutes of loading data, or after training (the seq2seq
attention figure). All problems of a config are reported at once, one sentence with its fix
each, on one line. What needs the data (`trainers.train.check_batch_fits`) stays with it.
"""

import math
import numbers
from typing import Any, NamedTuple

import jax
import ml_collections

import jax_models
from jax_models.errors import UserError
from trainers.data import DATA_SOURCES, DATASETS
from trainers.recipes import OPTIMIZERS, SCHEDULES

COMPUTE_DTYPES = ("float32", "bfloat16")
# Seeds reach jitted code as int32 arguments (`trainers.train.shuffled_order`); numpy refuses
# negative ones.
MAX_SEED = 2**31 - 1
TASK_CONFIGS = {"classification": "configs/default.py", "seq2seq": "configs/seq2seq.py"}


class Bound(NamedTuple):
    """The numbers a setting accepts, and a good value to suggest."""

    example: float
    minimum: float
    maximum: float | None = None
    exclusive: bool = False  # both bounds excluded
    integer: bool = False


COMMON_BOUNDS = {
    "num_epochs": Bound(5, 1, integer=True),
    "eval_batch_size": Bound(1000, 1, integer=True),
    "learning_rate": Bound(1e-3, 0, exclusive=True),
    "seed": Bound(0, 0, MAX_SEED, integer=True),
    "divergence_factor": Bound(10.0, 1, exclusive=True),
}
CLASSIFICATION_BOUNDS = {
    **COMMON_BOUNDS,
    "batch_size": Bound(128, 1, integer=True),
    "validation_fraction": Bound(0.1, 0, 1, exclusive=True),
    "max_train_examples": Bound(0, 0, integer=True),
    "log_every_steps": Bound(20, 1, integer=True),
    "warmup_fraction": Bound(0.2, 0, 1),
    "momentum": Bound(0.9, 0, 1),
    "weight_decay": Bound(5e-4, 0),
    "grad_clip_norm": Bound(1.0, 0),
    "label_smoothing": Bound(0.1, 0, 1),
    "crop_padding": Bound(4, 0, integer=True),
    "cutout": Bound(8, 0, integer=True),
}
SEQ2SEQ_BOUNDS = {
    **COMMON_BOUNDS,
    "batch_size": Bound(64, 1, integer=True),
    "seq_len": Bound(10, 1, integer=True),
    "min_seq_len": Bound(0, 0, integer=True),
    "vocab_size": Bound(10, 1, integer=True),
    "num_samples": Bound(10000, 1, integer=True),
    "eval_fraction": Bound(0.1, 0, 1, exclusive=True),
    "embedding_size": Bound(32, 1, integer=True),
    "hidden_size": Bound(128, 1, integer=True),
    "attention_size": Bound(64, 1, integer=True),
    "teacher_forcing_ratio": Bound(0.5, 0, 1),
    "max_grad_norm": Bound(1.0, 0, exclusive=True),
    "num_attention_examples": Bound(4, 0, integer=True),
}
CLASSIFICATION_TEXT_KEYS = ("model", "dataset", "data_source", "data_dir", "tfds_data_dir")
CLASSIFICATION_RECIPE_KEYS = ("recipe", "optimizer", "schedule", "nesterov", "flip")
SEQ2SEQ_OTHER_KEYS = ("test_lengths", "use_attention")


def _is_number(value: Any, integer: bool) -> bool:
    kind = numbers.Integral if integer else numbers.Real
    return isinstance(value, kind) and not isinstance(value, bool)


def _bound_problem(key: str, value: Any, bound: Bound) -> str | None:
    """One sentence with the fix when `value` breaks `bound`, else None."""
    if _is_number(value, bound.integer) and (bound.integer or math.isfinite(value)):
        above = value > bound.minimum if bound.exclusive else value >= bound.minimum
        below = bound.maximum is None or (
            value < bound.maximum if bound.exclusive else value <= bound.maximum
        )
        if above and below:
            return None
    if bound.maximum is None:
        span = f"{'above' if bound.exclusive else 'of at least'} {bound.minimum}"
    elif bound.exclusive:
        span = f"strictly between {bound.minimum} and {bound.maximum}"
    else:
        span = f"in [{bound.minimum}, {bound.maximum}]"
    kind = "an integer" if bound.integer else "a finite number"
    return f"{key} must be {kind} {span}, got {value!r}; set e.g. --config.{key}={bound.example}."


def _bound_problems(config: ml_collections.ConfigDict, bounds: dict[str, Bound]) -> dict[str, str]:
    """The problem of each setting outside its bound, by key."""
    problems = {key: _bound_problem(key, config[key], bound) for key, bound in bounds.items()}
    return {key: problem for key, problem in problems.items() if problem}


def _choice_problem(key: str, value: Any, choices: tuple[str, ...]) -> str | None:
    if isinstance(value, str) and value in choices:
        return None
    return f"Unknown {key} {value!r}; choose one of: {', '.join(choices)} (--config.{key}=...)."


def parse_steps_per_call(value: Any) -> int | str:
    """`config.steps_per_call` as "auto" or a positive int; ValueError for anything else.

    The default "auto" makes ml_collections type the key as a string, so
    --config.steps_per_call=4 arrives as "4"; an int (a config built in Python) is taken too.
    """
    if value == "auto":
        return value
    digits = isinstance(value, str) and value.isascii() and value.isdigit()
    if (digits or _is_number(value, integer=True)) and int(value) >= 1:
        return int(value)
    raise ValueError(
        f"steps_per_call must be auto or a positive integer, got {value!r}; set e.g. "
        "--config.steps_per_call=auto."
    )


def _check_task(config: ml_collections.ConfigDict, task: str, keys: tuple[str, ...]) -> None:
    """Refuses a config of the other task (`--config.task=seq2seq` on configs/default.py):
    every later check and the trainer itself read keys that only the right config file has."""
    given = config.get("task", "classification")
    if given not in TASK_CONFIGS:
        files = " or ".join(f"--config={file} ({name})" for name, file in TASK_CONFIGS.items())
        raise UserError(f"Unknown task {given!r}; use {files}.")
    if given != task:
        raise UserError(
            f"This trainer runs task={task}, not task={given}; train through scripts.train, "
            "which picks the trainer from --config.task."
        )
    missing = [key for key in keys if key not in config]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise UserError(
            f"task={task} needs the settings of {TASK_CONFIGS[task]}, and this config lacks "
            f"{', '.join(missing[:3])}{more}; run with --config={TASK_CONFIGS[task]}."
        )


def _raise(problems: list[str]) -> None:
    if problems:
        raise UserError(" ".join(problems))


def check_classification_settings(config: ml_collections.ConfigDict) -> None:
    """Every data-free check of a CNN run (`trainers.train`)."""
    required = (*CLASSIFICATION_TEXT_KEYS, *CLASSIFICATION_RECIPE_KEYS, *CLASSIFICATION_BOUNDS)
    _check_task(config, "classification", required)
    problems = _bound_problems(config, CLASSIFICATION_BOUNDS)
    for key, choices in (
        ("model", jax_models.names()),
        ("dataset", tuple(DATASETS)),
        ("data_source", DATA_SOURCES),
        ("optimizer", OPTIMIZERS),
        ("schedule", SCHEDULES),
    ):
        if problem := _choice_problem(key, config[key], choices):
            problems[key] = problem
    problems.update(_recipe_problems(config, problems))
    for key in ("data_dir", "tfds_data_dir", "data_mirror", "compilation_cache_dir"):
        if not isinstance(config.get(key, ""), str):
            problems[key] = f"{key} must be a path or URL string, got {config[key]!r}."
    compute_dtype = config.get("compute_dtype", "float32")
    if compute_dtype not in COMPUTE_DTYPES:
        problems["compute_dtype"] = (
            f"compute_dtype {compute_dtype!r} is not one of {', '.join(COMPUTE_DTYPES)}; "
            "set --config.compute_dtype=float32."
        )
    try:
        parse_steps_per_call(config.get("steps_per_call", "auto"))
    except ValueError as error:
        problems["steps_per_call"] = str(error)
    if "batch_size" not in problems and config.batch_size % jax.device_count():
        problems["batch_size"] = (
            f"batch_size {config.batch_size} must be a positive multiple of the "
            f"{jax.device_count()} devices; change --config.batch_size."
        )
    if (
        not problems.keys() & {"batch_size", "max_train_examples"}
        and 0 < config.max_train_examples < config.batch_size
    ):
        problems["max_train_examples"] = (
            f"max_train_examples {config.max_train_examples} is fewer than one batch "
            f"({config.batch_size}); raise --config.max_train_examples or lower "
            "--config.batch_size."
        )
    _raise(list(problems.values()))


def _recipe_problems(config: ml_collections.ConfigDict, found: dict[str, str]) -> dict[str, str]:
    """What the bounds and choices miss in a recipe: flags that must be True or False, a name
    that must be text, and weight decay asked of plain Adam, which would silently drop it."""
    problems = {}
    for key in ("nesterov", "flip"):
        if not isinstance(config[key], bool):
            problems[key] = (
                f"{key} must be True or False, got {config[key]!r}; set e.g. --config.{key}=True."
            )
    if not isinstance(config.recipe, str) or not config.recipe:
        problems["recipe"] = (
            f"recipe must name the recipe, got {config.recipe!r}; set e.g. --config.recipe=study."
        )
    if (
        not found.keys() & {"optimizer", "weight_decay"}
        and config.optimizer == "adam"
        and config.weight_decay > 0
    ):
        problems["weight_decay"] = (
            f"optimizer adam takes no weight_decay (got {config.weight_decay}); set "
            "--config.optimizer=adamw for decoupled weight decay, or --config.weight_decay=0."
        )
    return problems


def check_seq2seq_settings(config: ml_collections.ConfigDict) -> None:
    """Every data-free check of a seq2seq run (`trainers.seq2seq_train`), including the
    combinations that would otherwise crash deep inside jit or after training."""
    _check_task(config, "seq2seq", (*SEQ2SEQ_BOUNDS, *SEQ2SEQ_OTHER_KEYS))
    problems = _bound_problems(config, SEQ2SEQ_BOUNDS)
    if not isinstance(config.use_attention, bool):
        problems["use_attention"] = (
            f"use_attention must be True or False, got {config.use_attention!r}."
        )
    lengths = config.test_lengths
    if not isinstance(lengths, tuple | list) or not all(
        _is_number(length, integer=True) and length >= 1 for length in lengths
    ):
        problems["test_lengths"] = (
            f"test_lengths must be positive list lengths, got {lengths!r}; set e.g. "
            "--config.test_lengths=20,40 (or =() for none)."
        )
    if not problems.keys() & {"seq_len", "min_seq_len"} and config.min_seq_len > config.seq_len:
        problems["min_seq_len"] = (
            f"min_seq_len must be 0 (every list seq_len long) or between 1 and seq_len "
            f"({config.seq_len}), got {config.min_seq_len}; set --config.min_seq_len=0."
        )
    if not problems.keys() & {"num_samples", "eval_fraction", "batch_size"}:
        num_eval = int(config.num_samples * config.eval_fraction)
        if num_eval < 1 or config.num_samples - num_eval < config.batch_size:
            problems["num_samples"] = (
                f"num_samples {config.num_samples} with eval_fraction {config.eval_fraction} "
                f"leaves {num_eval} held-out and {config.num_samples - num_eval} training "
                f"lists; it needs at least 1 held-out list and one batch ({config.batch_size}) "
                "of training lists; raise --config.num_samples."
            )
        elif "num_attention_examples" not in problems and config.use_attention is True:
            shown = config.num_attention_examples
            if not 1 <= shown <= num_eval:
                problems["num_attention_examples"] = (
                    f"num_attention_examples must be between 1 and the {num_eval} held-out "
                    f"lists when use_attention is True, got {shown}; set e.g. "
                    "--config.num_attention_examples=4."
                )
    _raise(list(problems.values()))
