"""Assembles the tabs into one Gradio app and launches it on the queue.

Import this only after `HF_HUB_OFFLINE` and `GRADIO_ANALYTICS_ENABLED` are settled (as
`python -m gradio_app` does): Gradio, transformers and diffusers read them at import time.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from gradio_app.config import AppConfig
from gradio_app.tabs import (
    chatbot,
    image_classifier,
    image_generation,
    next_word,
    question_answering,
    sentiment,
    sequence_reversal,
    story,
    summarization,
)
from gradio_app.tabs.common import NOTICE_CLASS

TITLE = "Model playground"
TABS: tuple[tuple[str, Callable[[AppConfig], None]], ...] = (
    ("Summarization", summarization.build),
    ("Next word", next_word.build),
    ("Story", story.build),
    ("Chatbot", chatbot.build),
    ("Sentiment", sentiment.build),
    ("Question answering", question_answering.build),
    ("Image generation", image_generation.build),
    ("Image classifier", image_classifier.build),
    ("Sequence reversal", sequence_reversal.build),
)
CSS = (
    ".model-status { font-size: 0.9em; opacity: 0.85; }\n"
    # The notice under a tab's outputs (its text, not the block Gradio wraps it in, which
    # carries the same class): how the tab's last run failed, or that it was stopped.
    f".prose.{NOTICE_CLASS} {{ border-left: 3px solid var(--color-accent); padding-left: 0.75em; }}"
)
MAX_QUEUED = 64  # beyond this, new requests are turned away instead of waiting for minutes


def build_app(config: AppConfig) -> gr.Blocks:
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {TITLE}\n"
            "Pre-trained Hugging Face models and the models this project trains, one tab a "
            "task. Each model loads on first use, so the first request in a tab takes longer."
        )
        for label, build in TABS:
            with gr.Tab(label):
                build(config)
    demo.queue(default_concurrency_limit=config.concurrency_limit, max_size=MAX_QUEUED)
    return demo


def launch(
    demo: gr.Blocks, host: str, port: int | None, *, block: bool = True
) -> tuple[object, str, object]:
    """Serves on `host` only (no share link, no server-side rendering, which needs Node)."""
    return demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        ssr_mode=False,
        mcp_server=False,
        prevent_thread_lock=not block,
        quiet=not block,
        theme=gr.themes.Default(),
        css=CSS,
        footer_links=["api"],
    )
