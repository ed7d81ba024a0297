"""How a tab talks to the user: warnings for input it will not run, and errors that never show
a stack trace on the page (the traceback goes to the server log instead)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from jax_models.errors import UserError

LOGGER = logging.getLogger(__name__)


def is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


def warn(message: str) -> None:
    """A yellow toast in the page (a Python warning when called outside Gradio)."""
    gr.Warning(message)


def inform(message: str) -> None:
    """A neutral toast for something the user should know but need not fix."""
    gr.Info(message)


@contextlib.contextmanager
def _as_gradio_errors(tab: str) -> Iterator[None]:
    try:
        yield
    except gr.Error:
        raise
    except UserError as error:
        raise gr.Error(str(error), duration=20, print_exception=False) from None
    except Exception as error:
        LOGGER.exception("The %s tab failed", tab)
        raise gr.Error(
            f"The {tab} tab hit an unexpected {type(error).__name__}; "
            "the details are in the server log.",
            print_exception=False,
        ) from None


def user_facing(tab: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a handler so every failure reaches the page as one readable message."""
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def generator_handler(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with _as_gradio_errors(tab):
                yield from handler(*args, **kwargs)

        return generator_handler

    @functools.wraps(handler)
    def plain_handler(*args: Any, **kwargs: Any) -> Any:
        with _as_gradio_errors(tab):
            return handler(*args, **kwargs)

    return plain_handler
