"""Which model each tab uses, and the `--models` file that changes it.

Kept free of Gradio, PyTorch and Hugging Face imports: `__main__` reads the configuration
before those libraries are imported, because they read `HF_HUB_OFFLINE` at import time.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from jax_models.errors import UserError

DEFAULT_MODELS: Mapping[str, str] = MappingProxyType(
    {
        "summarization": "facebook/bart-large-cnn",
        "next_word": "gpt2",
        "story": "gpt2",
        "chatbot": "microsoft/DialoGPT-medium",
        "sentiment": "distilbert-base-uncased-finetuned-sst-2-english",
        "question_answering": "distilbert-base-cased-distilled-squad",
        "image_generation": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    }
)
TASKS: tuple[str, ...] = tuple(DEFAULT_MODELS)
_HUB_ID = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?")  # `name` or `org/name`


@dataclass(frozen=True)
class AppConfig:
    """Everything the app needs to know at start-up."""

    models: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    checkpoints: Path | None = None
    concurrency_limit: int = 1

    def model(self, task: str) -> str:
        return self.models[task]


def looks_like_path(model_ref: str) -> bool:
    """A resolved reference that is a directory rather than a hub id (`org/name`)."""
    return model_ref.startswith(("/", "./", "../", "~")) or Path(model_ref).expanduser().is_dir()


def _is_local(model_ref: str, base: Path) -> bool:
    """Whether a models-file value names a directory rather than a hub id.

    Hub ids are `name` or `org/name` in letters, digits, `-`, `_` and `.`. Anything else is a
    path: a value starting with `/`, `~`, `./` or `../`, one with two or more `/`, one with
    other characters (a backslash, a space), and an `org/name` or `name` whose first part is a
    folder beside the models file (`models/sst2` when `models/` is there).
    """
    if model_ref in (".", "..") or model_ref.startswith(("/", "~", "./", "../")):
        return True
    if not _HUB_ID.fullmatch(model_ref):
        return True
    return (base / model_ref.split("/")[0]).is_dir()


def _resolve(task: str, model_ref: str, models_file: Path) -> str:
    """A hub id as it is; a directory as an absolute path, relative ones read from the file's
    folder, and a UserError at once when it does not exist (it is never tried on the hub)."""
    base = models_file.parent
    if not _is_local(model_ref, base):
        return model_ref
    directory = (base / Path(model_ref).expanduser()).resolve()
    if not directory.is_dir():
        raise UserError(
            f"Models file {models_file}: `{task}` names the local directory {directory}, which "
            f"does not exist; download the model there (hf download {DEFAULT_MODELS[task]} "
            f"--local-dir {directory}) or correct the path."
        )
    return str(directory)


def read_models_file(path: Path) -> dict[str, str]:
    """Reads a TOML or JSON file mapping task names to hub ids or local directories.

    Relative directories are resolved against the file's own folder, so a models file can
    sit next to the model copies it names and work from any current directory.
    """
    if not path.exists():
        raise UserError(f"Models file {path} does not exist; pass a TOML or JSON file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(
            f"Models file {path} is not a text file (it is not UTF-8); pass a TOML or JSON file."
        ) from None
    except OSError as error:
        raise UserError(
            f"Models file {path} cannot be read ({error.strerror or error}); pass a readable "
            "TOML or JSON file."
        ) from None
    try:
        entries = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise UserError(f"Models file {path} is not valid {kind}: {error}.") from error
    if not isinstance(entries, dict):
        raise UserError(f"Models file {path} must map task names to model ids or directories.")
    unknown = sorted(set(entries) - set(TASKS))
    if unknown:
        raise UserError(
            f"Models file {path} names unknown tasks {unknown}; known tasks are {list(TASKS)}."
        )
    models = {}
    for task, model_ref in entries.items():
        if not isinstance(model_ref, str) or not model_ref.strip():
            raise UserError(
                f"Models file {path}: `{task}` must be a hub id or a directory, got {model_ref!r}."
            )
        models[task] = _resolve(task, model_ref.strip(), path)
    return models


def build_config(
    models_file: Path | None, checkpoints: Path | None, concurrency_limit: int = 1
) -> AppConfig:
    """Merges the models file over the defaults."""
    if concurrency_limit < 1:
        raise UserError(f"--concurrency must be at least 1, got {concurrency_limit}.")
    if checkpoints is not None and not checkpoints.expanduser().is_dir():
        raise UserError(
            f"--checkpoints {checkpoints} is not a directory; pass the folder that holds your "
            "python -m scripts.train workdirs (runs, when they are runs/lenet5_mnist, ...)."
        )
    models = dict(DEFAULT_MODELS)
    if models_file is not None:
        models.update(read_models_file(models_file))
    return AppConfig(
        models=models,
        checkpoints=None if checkpoints is None else checkpoints.expanduser(),
        concurrency_limit=concurrency_limit,
    )


def all_local(config: AppConfig) -> bool:
    """True when every Hugging Face model is a local directory, so the hub is never needed."""
    return all(looks_like_path(config.model(task)) for task in TASKS)
