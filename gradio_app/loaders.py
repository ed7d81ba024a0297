"""Loads each model once per process, on first use, and explains in plain words when it cannot.

Loading is lazy so the app starts in seconds and a tab whose model is missing does not stop
the others; a lock per model makes concurrent first requests wait for one load instead of
starting several.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gradio_app.config import looks_like_path
from jax_models.errors import UserError

T = TypeVar("T")
LOGGER = logging.getLogger(__name__)
_REASON_CHARS = 300


class ModelUnavailable(UserError):
    """A model could not be loaded; the message says which, why, and how to fix it."""


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: Any = None
    loaded: bool = False
    failure: str | None = None


class ModelCache:
    """Process-wide cache keyed by (loader, model reference)."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._guard = threading.Lock()

    def _slot(self, load: Callable[..., Any], model_ref: str) -> _Slot:
        with self._guard:
            return self._slots.setdefault((load.__qualname__, model_ref), _Slot())

    def get(
        self,
        task: str,
        model_ref: str,
        load: Callable[[str], T],
        explain: Callable[[str, str, Exception], str] | None = None,
    ) -> T:
        """Returns the loaded model, loading it now if this is the first request.

        Any load failure becomes `ModelUnavailable` with `explain(task, model_ref, error)` as
        its message (default: `explain_hub_failure`). A failure is not cached: the next
        request tries again, so a model copied into place (or a network that comes back) is
        picked up without restarting the app.
        """
        slot = self._slot(load, model_ref)
        with slot.lock:
            if not slot.loaded:
                try:
                    slot.value = load(model_ref)
                except Exception as error:  # any failure becomes a message, never a crash
                    slot.failure = (explain or explain_hub_failure)(task, model_ref, error)
                    LOGGER.warning("%s", slot.failure)
                    LOGGER.debug("Loading %s failed", model_ref, exc_info=True)
                    raise ModelUnavailable(slot.failure) from error
                slot.loaded, slot.failure = True, None
            return slot.value

    def state(self, model_ref: str, load: Callable[..., Any]) -> str:
        """Whether the model is loaded, loads on first use, or why it failed (Markdown)."""
        slot = self._slot(load, model_ref)
        if slot.loaded:
            return "loaded"
        if slot.failure:
            return f"**not available.** {slot.failure}"
        return "loads on first use"

    def describe(self, model_ref: str, load: Callable[..., Any]) -> str:
        """One Markdown line for a tab: the model and whether it is loaded or why it failed."""
        return f"Model: `{model_ref}` — {self.state(model_ref, load)}"


def first_line(error: Exception) -> str:
    """The first line of an exception (where Hugging Face puts the useful part), kept short."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = lines[0] if lines else type(error).__name__
    if len(reason) > _REASON_CHARS:
        head = reason[:_REASON_CHARS]
        # End at a clause boundary when there is one, so the message still reads as prose.
        cut = head.find(" (")
        if cut <= 0:
            cut = head.rfind(". ")
        reason = head[:cut] if cut > 0 else head.rstrip() + "…"
    return reason.rstrip(".")


def explain_hub_failure(task: str, model_ref: str, error: Exception) -> str:
    """Which Hugging Face model failed, why, and how to point the app at a local copy."""
    name = task.replace("_", " ")
    reason = first_line(error)
    if looks_like_path(model_ref) and not Path(model_ref).expanduser().is_dir():
        reason = "the directory does not exist"
    if looks_like_path(model_ref):
        fix = (
            f"Check that `{model_ref}` holds a complete `save_pretrained` copy (configuration, "
            f"weights and tokenizer), or point `{task}` at another directory in the file given "
            "to `--models`."
        )
    else:
        local = f"models/{model_ref.split('/')[-1]}"
        fix = (
            "To use a local copy, download it where there is network access "
            f'(`hf download {model_ref} --local-dir {local}`), put `{task} = "{local}"` in '
            "a models file and start the app with `python -m gradio_app --models FILE --offline`."
        )
    return f"The {name} model `{model_ref}` could not be loaded: {reason}. {fix}"


MODELS = ModelCache()
