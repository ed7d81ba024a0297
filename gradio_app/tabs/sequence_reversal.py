"""Sequence reversal: the seq2seq-with-attention model of this project, with its attention map.

Imports the JAX code only on first use, so the app runs without it.
"""

from __future__ import annotations

import re
from functools import partial
from itertools import zip_longest
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from matplotlib.figure import Figure

from gradio_app.config import AppConfig
from gradio_app.feedback import is_blank, user_facing, warn
from gradio_app.loaders import MODELS, ModelUnavailable, first_line
from gradio_app.tabs.common import queue_settings, refresh_after, status_line
from jax_models.errors import UserError

TASK = "sequence_reversal"


def train_hint(checkpoints: Path | str | None) -> str:
    workdir = checkpoints or "runs"
    return (
        f"Train one with `python -m scripts.train --config=configs/seq2seq.py "
        f"--workdir={workdir}`, then start the app with `python -m gradio_app "
        f"--checkpoints {workdir}`."
    )


def load_trained_reverser(workdir: str) -> Any:
    from trainers.seq2seq_inference import load_reverser

    return load_reverser(workdir)


def explain_failure(task: str, workdir: str, error: Exception) -> str:
    if isinstance(error, UserError):  # the loader already says what is missing and what to run
        return str(error)
    return (
        f"The sequence-reversal model in `{workdir}` could not be loaded: "
        f"{first_line(error)}. {train_hint(workdir)}"
    )


def parse_tokens(text: str) -> list[int]:
    """Integers separated by spaces and/or commas."""
    pieces = [piece for piece in re.split(r"[\s,]+", text.strip()) if piece]
    bad = [piece for piece in pieces if not re.fullmatch(r"[+-]?\d+", piece)]
    if bad:
        raise UserError(f"Type whole numbers separated by spaces or commas; {bad} are not.")
    return [int(piece) for piece in pieces]


def attention_figure(tokens: list[int], output: list[int], weights: np.ndarray) -> Figure:
    """Rows are output positions, columns input positions: where each output step looked."""
    figure = Figure(figsize=(max(4.0, 0.5 * len(tokens) + 2), max(3.0, 0.5 * len(output) + 1.5)))
    axes = figure.add_subplot()
    image = axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-6))
    axes.set_xticks(range(len(tokens)), [str(token) for token in tokens])
    axes.set_yticks(range(len(output)), [str(token) for token in output])
    axes.set_xlabel("Input token")
    axes.set_ylabel("Output token")
    axes.set_title("Attention weights")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    return figure


def _describe(checkpoints: Path | None) -> str:
    if checkpoints is None:
        return f"No sequence-reversal model: no `--checkpoints` given. {train_hint(None)}"
    return MODELS.describe(str(checkpoints), load_trained_reverser)


def reverse_sequence(checkpoints: Path | None, text: str) -> tuple[str, str, Figure | None]:
    """The model's output, whether it is the exact reversal, and its attention heatmap."""
    if is_blank(text):
        warn("Type some integers, e.g. 3 1 4 1 5.")
        return "", "", None
    if checkpoints is None:
        raise ModelUnavailable(_describe(None))
    tokens = parse_tokens(text)
    reverser = MODELS.get(TASK, str(checkpoints), load_trained_reverser, explain_failure)
    output, weights = reverser.reverse(tokens)
    expected = tokens[::-1]
    wrong = [i for i, pair in enumerate(zip_longest(output, expected)) if pair[0] != pair[1]]
    verdict = (
        f"❌ Differs from the exact reversal ({' '.join(map(str, expected))}) at positions {wrong}."
        if wrong
        else "✅ The exact reversal."
    )
    figure = None
    if not reverser.uses_attention:
        verdict += " This model was trained without attention, so there is no heatmap."
    elif not output:
        verdict += " The model produced no tokens, so there is no heatmap."
    else:
        figure = attention_figure(tokens, output, np.asarray(weights))
    return " ".join(map(str, output)), verdict, figure


def build(config: AppConfig) -> None:
    checkpoints = config.checkpoints
    describe = partial(_describe, checkpoints)
    status = status_line(describe)
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Integers", value="3 1 4 1 5 9 2 6 5 3")
            run = gr.Button("Reverse", variant="primary")
            output = gr.Textbox(label="Model output", interactive=False)
            verdict = gr.Markdown()
        heatmap = gr.Plot(label="Attention")
    event = gr.on(
        [run.click, text.submit],
        user_facing(TASK, partial(reverse_sequence, checkpoints)),
        inputs=text,
        outputs=[output, verdict, heatmap],
        api_name="reverse_sequence",
        **queue_settings(config, TASK),
    )
    refresh_after(event, status, describe)
