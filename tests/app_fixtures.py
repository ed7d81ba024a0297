"""Test fixtures for the app: the tiny Hugging Face models (built once per session by
`gradio_app.tiny_models`, the module behind the README's no-download demo) and a running app.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import pytest

from gradio_app.app import build_app, launch
from gradio_app.config import AppConfig
from gradio_app.tiny_models import MODELS_FILE, write_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The tiny models, built once per test session however many modules import this."""
    root = tmp_path_factory.getbasetemp() / "tiny_hf_models"
    models_file = root / MODELS_FILE
    if not models_file.exists():
        write_tiny_models(root)
    return json.loads(models_file.read_text())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_app(config: AppConfig) -> Iterator[str]:
    """Serves the app on 127.0.0.1 in this process; yields its URL."""
    demo = build_app(config)
    _, url, _ = launch(demo, "127.0.0.1", free_port(), block=False)
    try:
        yield url
    finally:
        demo.close()
