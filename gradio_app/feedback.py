"""How a tab talks to the user: warnings for input it will not run, and failures as one plain
message, never a stack trace (the traceback goes to the server log).

A handler wrapped by `user_facing` fails by raising `gr.Error`, so API clients (gradio_client)
get an `AppError` with the message. In the page, a tab with a notice area under its outputs
(`tabs.common.report_outcome`) hides that toast, which would sit over the tab bar: the wrapper
records how the run ended for the browser session instead, and the tab's failure listener,
which Gradio also fires when Stop cancels a run, reads it back into the notice.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr
from gradio.context import LocalContext

from jax_models.errors import UserError

LOGGER = logging.getLogger(__name__)
# API clients never run the listeners that read their records back, so keep only the newest.
_MAX_RECORDS = 1024
_CODE_SPAN = re.compile(r"`([^`]*)`")


def is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


def warn(message: str) -> None:
    """A yellow toast in the page (a Python warning when called outside Gradio)."""
    gr.Warning(message)


def inform(message: str) -> None:
    """A neutral toast for something the user should know but need not fix."""
    gr.Info(message)


def plain_text(message: str) -> str:
    """`message` without Markdown code marks, for toasts, which show Markdown raw."""
    return _CODE_SPAN.sub(r"\1", message)


def tab_title(tab: str) -> str:
    return tab.replace("_", " ")


@dataclass(frozen=True)
class Outcome:
    """How the latest run of one tab in one browser session ended (or that it still runs)."""

    state: Literal["running", "failed", "stopped"]
    message: str = ""


class _Outcomes:
    """The latest `Outcome` per (session, tab), bounded to the newest `_MAX_RECORDS`."""

    def __init__(self) -> None:
        self._records: OrderedDict[tuple[str, str], Outcome] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: tuple[str, str] | None, outcome: Outcome | None) -> None:
        if key is None:  # called outside a Gradio request (tests, scripts): nobody to tell
            return
        with self._lock:
            self._records.pop(key, None)
            if outcome is not None:
                self._records[key] = outcome
                while len(self._records) > _MAX_RECORDS:
                    self._records.popitem(last=False)

    def take(self, key: tuple[str, str]) -> Outcome | None:
        with self._lock:
            return self._records.pop(key, None)


OUTCOMES = _Outcomes()


def _current_key(record: str) -> tuple[str, str] | None:
    """The (session, record) of the request Gradio is serving on this thread, if any.

    Read from Gradio's request context so that handlers keep their own signatures (Gradio
    injects `gr.Request` only into parameters it finds there).
    """
    request = LocalContext.request.get(None)
    session = getattr(request, "session_hash", None)
    return (session, record) if session else None


def take_outcome(record: str, request: gr.Request | None) -> Outcome | None:
    """How the session's latest run of the event recorded as `record` ended, read once: None
    when no wrapped handler ran (Gradio refused the request, or Stop cancelled it while it
    waited in the queue)."""
    return OUTCOMES.take((getattr(request, "session_hash", None) or "", record))


def _error(message: str, in_notice: bool) -> gr.Error:
    """API clients and toasts get plain text; the notice renders the Markdown recorded for it."""
    if in_notice:
        return gr.Error(plain_text(message), visible=False, print_exception=False)
    return gr.Error(plain_text(message), duration=20, print_exception=False)


@contextlib.contextmanager
def _as_gradio_errors(tab: str, key: tuple[str, str] | None, in_notice: bool) -> Iterator[None]:
    try:
        yield
    except gr.Error as error:
        OUTCOMES.put(key, Outcome("failed", str(error.message)))
        raise _error(str(error.message), in_notice) from None
    except UserError as error:
        OUTCOMES.put(key, Outcome("failed", str(error)))
        raise _error(str(error), in_notice) from None
    except Exception as error:
        LOGGER.exception("The %s tab failed", tab)
        message = (
            f"The {tab_title(tab)} tab hit an unexpected {type(error).__name__}; "
            "the details are in the server log."
        )
        OUTCOMES.put(key, Outcome("failed", message))
        raise _error(message, in_notice) from None


def user_facing(
    tab: str, handler: Callable[..., Any], *, notice: str | None = None
) -> Callable[..., Any]:
    """Wraps a handler so every failure reaches the page as one readable message.

    With `notice`, the name under which this event's outcome is recorded (one per event, so
    two events of a tab never read each other's), the tab shows failures in its notice area
    (`tabs.common.report_outcome`) and the toast is hidden; without, the toast carries the
    message as plain text.
    """
    if inspect.isgeneratorfunction(handler):  # functools.partial objects included

        @functools.wraps(handler)
        def generator_handler(*args: Any, **kwargs: Any) -> Iterator[Any]:
            key = _current_key(notice) if notice else None
            OUTCOMES.put(key, Outcome("running"))
            try:
                with _as_gradio_errors(tab, key, notice is not None):
                    yield from handler(*args, **kwargs)
            except GeneratorExit:  # Gradio closes the handler when the user presses Stop
                OUTCOMES.put(key, Outcome("stopped"))
                raise
            OUTCOMES.put(key, None)

        return generator_handler

    @functools.wraps(handler)
    def plain_handler(*args: Any, **kwargs: Any) -> Any:
        key = _current_key(notice) if notice else None
        OUTCOMES.put(key, None)
        with _as_gradio_errors(tab, key, notice is not None):
            return handler(*args, **kwargs)

    return plain_handler
