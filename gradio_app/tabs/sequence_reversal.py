"""Sequence reversal: the seq2seq-with-attention model of this project, with its attention map.

The runs are found below `--checkpoints` from their results files (`gradio_app.runs`), whose
config also gives the lengths and tokens each run accepts, so the tab states them beside the
input from start-up; the model itself is restored on its first request.
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
from gradio_app.feedback import is_blank, warn
from gradio_app.loaders import MODELS, first_line
from gradio_app.runs import (
    SEQ2SEQ,
    Listing,
    TrainedRun,
    accepted_lengths,
    choose_run,
    find_runs,
    listing_status,
)
from gradio_app.tabs.common import notice_area, queue_settings, run_reported
from jax_models.errors import UserError

TASK = "sequence_reversal"
EXAMPLES = ("3 1 4 1 5", "2, 7, 1, 8, 2, 8", "9 8 7 6 5 4 3 2 1 0", "[1, 2, 3]")
_BRACKETS = re.compile(r"^\s*[\[(](.*)[\])]\s*$", re.DOTALL)


def load_trained_reverser(model_ref: str) -> Any:
    """`model_ref` is a run's absolute file prefix, `{workdir}/seq2seq`."""
    from trainers.seq2seq_inference import load_reverser

    return load_reverser(Path(model_ref).parent)


def explain_failure(task: str, model_ref: str, error: Exception) -> str:
    """The loader's own sentence for what it recognised, a plain one for anything else."""
    if isinstance(error, UserError):
        return str(error)
    return f"The sequence-reversal model `{model_ref}` could not be loaded: {first_line(error)}."


def parse_tokens(text: str) -> list[int]:
    """Whole numbers separated by spaces, commas or semicolons, optionally in brackets."""
    bracketed = _BRACKETS.match(text)
    inner = bracketed[1] if bracketed else text
    pieces = [piece for piece in re.split(r"[\s,;]+", inner.strip()) if piece]
    bad = [piece for piece in pieces if not re.fullmatch(r"[+-]?\d+", piece)]
    if bad:
        raise UserError(f"Type whole numbers separated by spaces or commas; {bad} are not.")
    return [int(piece) for piece in pieces]


def input_hint(run: TrainedRun | None) -> str:
    """What the run accepts, from its own config: shown under the input box."""
    if run is None:
        return "Whole numbers separated by spaces or commas."
    return (
        f"This model takes lists of {accepted_lengths(run.config)} whole numbers from 0 to "
        f"{run.vocab_size - 1}, separated by spaces or commas."
    )


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


def reverse_sequence(
    checkpoints: Path | None, text: str, run_key: str | None = None
) -> tuple[str, str, Figure | None]:
    """The model's output, whether it is the exact reversal, and its attention heatmap."""
    if is_blank(text):
        warn("Type some integers, e.g. 3 1 4 1 5.")
        return "", "", None
    run = choose_run(checkpoints, run_key, SEQ2SEQ)
    tokens = parse_tokens(text)
    reverser = MODELS.get(TASK, run.model_ref, load_trained_reverser, explain_failure)
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


def _chosen(checkpoints: Path | None, run_key: str | None) -> TrainedRun | None:
    try:
        return choose_run(checkpoints, run_key, SEQ2SEQ)
    except UserError:
        return None


def describe(checkpoints: Path | None, run_key: str | None) -> str:
    """The status line: the selected run and whether it has loaded, or why there is none."""
    try:
        run = choose_run(checkpoints, run_key, SEQ2SEQ)
    except UserError as error:
        return str(error)
    return f"Model: `{run.key}` — {MODELS.state(run.model_ref, load_trained_reverser)}"


def on_run_change(checkpoints: Path | None, run_key: str | None) -> tuple[gr.Textbox, str]:
    """The input's hint and the status line follow the selected run."""
    hint = input_hint(_chosen(checkpoints, run_key))
    return gr.Textbox(info=hint), describe(checkpoints, run_key)


def _first_key(listing: Listing) -> str | None:
    return listing.runs[0].key if listing.runs else None


def _status(checkpoints: Path | None, listing: Listing) -> str:
    if not listing.runs:  # says how to train one, and whether the search was cut short
        return listing_status(checkpoints, SEQ2SEQ, listing)
    return describe(checkpoints, _first_key(listing))


def relist(checkpoints: Path | None) -> tuple[gr.Dropdown, gr.Textbox, str]:
    """Finds the runs again; the dropdown shows only when there is a choice to make."""
    listing = find_runs(checkpoints, SEQ2SEQ)
    return (
        gr.Dropdown(
            choices=listing.choices(), value=_first_key(listing), visible=len(listing.runs) > 1
        ),
        gr.Textbox(info=input_hint(listing.runs[0] if listing.runs else None)),
        _status(checkpoints, listing),
    )


def build(config: AppConfig) -> None:
    checkpoints = config.checkpoints
    listing = find_runs(checkpoints, SEQ2SEQ)
    first = listing.runs[0] if listing.runs else None
    status = gr.Markdown(_status(checkpoints, listing), elem_classes=["model-status"])
    with gr.Row():
        # Custom values let the API name a run trained after start-up; `choose_run` checks them.
        run_key = gr.Dropdown(
            listing.choices(),
            value=_first_key(listing),
            label="Trained reverser",
            allow_custom_value=True,
            visible=len(listing.runs) > 1,
        )
        refresh = gr.Button("Refresh list", size="sm", scale=0)
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Integers", value=EXAMPLES[0], info=input_hint(first))
            reverse_button = gr.Button("Reverse", variant="primary")
            gr.Examples(
                [[example] for example in EXAMPLES], inputs=[text], label="Lists to reverse"
            )
            output = gr.Textbox(label="Model output", interactive=False)
            verdict = gr.Markdown()
            notice = notice_area()
        heatmap = gr.Plot(label="Attention")

    # The tab's events, all here.
    event = run_reported(
        [reverse_button.click, text.submit],
        TASK,
        partial(reverse_sequence, checkpoints),
        inputs=[text, run_key],
        outputs=[output, verdict, heatmap],
        notice=notice,
        api_name="reverse_sequence",
        **queue_settings(config, TASK),
    )
    for outcome in (event.success, event.failure):  # the first request loads the model
        outcome(
            partial(describe, checkpoints),
            inputs=run_key,
            outputs=status,
            queue=False,
            api_visibility="private",
        )
    run_key.change(
        partial(on_run_change, checkpoints),
        inputs=run_key,
        outputs=[text, status],
        api_visibility="private",
    )
    refresh.click(
        partial(relist, checkpoints),
        outputs=[run_key, text, status],
        api_visibility="private",
    )
