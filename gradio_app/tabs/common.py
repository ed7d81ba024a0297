"""Pieces every model tab shares: the model status line and the per-tab queue settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from gradio_app.config import AppConfig


def status_line(describe: Callable[[], str]) -> gr.Markdown:
    """A line naming the tab's model and whether it loaded, or why not."""
    return gr.Markdown(describe(), elem_classes=["model-status"])


def refresh_after(event: Any, status: gr.Markdown, describe: Callable[[], str]) -> None:
    """Rewrites the status line once `event` finishes, whether it succeeded or failed.

    Two listeners because Gradio 6 skips `.then` after a failed event.
    """
    for outcome in (event.success, event.failure):
        outcome(describe, outputs=status, queue=False, api_visibility="private")


def queue_settings(config: AppConfig, tab: str) -> dict[str, Any]:
    """All events of one tab share one concurrency group, so a tab never runs more at once."""
    return {"concurrency_limit": config.concurrency_limit, "concurrency_id": tab}
