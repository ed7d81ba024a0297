"""Runs a long model call on a worker thread so the Gradio handler can stream, show progress,
and stop the call when the user presses Stop.

Gradio cancels a generator handler by closing it. The handler here yields after every decoding
or denoising step, so closing lands promptly; its `finally` then flags the worker, whose
stopping criterion (text) or step callback (diffusion) ends the model call at the next step.

Gradio can only close a generator it has stored, which it does after the handler's first
yield; a Stop that arrives before then cancels the request but leaves the generator to the
garbage collector. So the first update comes before the worker starts: a run stopped that early
never starts, and once the worker runs, Gradio holds the generator and closes it on Stop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

from jax_models.errors import UserError

T = TypeVar("T")

# Sampling draws from torch's global generator; holding this lock while seeding and sampling
# keeps a seed reproducible when several users generate at once.
SAMPLING_LOCK = threading.Lock()
MAX_SEED = 2**32 - 1  # what numpy and most UIs accept; torch takes more, but not any integer


def checked_seed(seed: float | None) -> int:
    """The seed a person typed, as torch takes it, or a plain error (an empty box, a fraction,
    or a number torch would overflow on)."""
    try:
        whole = int(seed)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # empty, not a number, infinite
        whole = None
    if whole is None or whole != seed or not 0 <= whole <= MAX_SEED:
        raise UserError(f"The seed must be a whole number from 0 to {MAX_SEED}; got {seed}.")
    return whole


@dataclass(frozen=True)
class Update(Generic[T]):
    """What the worker has produced so far."""

    steps: int
    text: str
    done: bool = False
    result: T | None = None


class _QueueStreamer(TextStreamer):
    """Forwards decoded text to the handler instead of printing it."""

    def __init__(self, tokenizer: Any, events: queue.Queue) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._events = events

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self._events.put(("text", text))


class _StepSignal(StoppingCriteria):
    """Reports each decoding step and stops decoding once the run is cancelled."""

    def __init__(self, run: BackgroundRun) -> None:
        self._run = run

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        cancelled = self._run.step()
        return torch.full(
            (input_ids.shape[0],), cancelled, dtype=torch.bool, device=input_ids.device
        )


class BackgroundRun(Generic[T]):
    """One cancellable model call; pass `streamer`/`stopping_criteria` or call `step()`."""

    def __init__(self, name: str, tokenizer: Any | None = None) -> None:
        self.name = name
        self._events: queue.Queue = queue.Queue()
        self._cancelled = threading.Event()
        self.streamer = _QueueStreamer(tokenizer, self._events) if tokenizer is not None else None
        self.stopping_criteria = StoppingCriteriaList([_StepSignal(self)])

    def step(self) -> bool:
        """Called by the model after each step; returns True when the caller has gone away."""
        self._events.put(("step", None))
        return self._cancelled.is_set()

    def _work(self, work: Callable[[], T]) -> None:
        try:
            self._events.put(("done", work()))
        except BaseException as error:  # handed to the handler thread, which re-raises it
            self._events.put(("error", error))

    def updates(self, work: Callable[[], T]) -> Iterator[Update[T]]:
        """Yields an empty update, then starts `work` and yields after every step until it
        returns (or raises)."""
        steps, text = 0, ""
        yield Update(steps, text)
        thread = threading.Thread(target=self._work, args=(work,), name=self.name, daemon=True)
        thread.start()
        try:
            while True:
                kind, payload = self._events.get()
                if kind == "error":
                    raise payload
                if kind == "done":
                    yield Update(steps, text, done=True, result=payload)
                    return
                if kind == "step":
                    steps += 1
                else:
                    text += payload
                yield Update(steps, text)
        finally:
            # No join: Gradio closes generators on its event loop, which must not block.
            self._cancelled.set()
