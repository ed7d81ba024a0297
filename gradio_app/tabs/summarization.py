"""Summarization: an encoder-decoder model (BART) through `generate`, with length controls."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr
import torch

from gradio_app.config import AppConfig
from gradio_app.feedback import is_blank, warn
from gradio_app.generation import BackgroundRun
from gradio_app.hf_models import device, load_seq2seq
from gradio_app.loaders import MODELS
from gradio_app.tabs.common import ModelTab, examples, notice_area
from gradio_app.window import context_window, fit_tokens

TASK = "summarization"
# Keyed by the handler's parameter names, which are also the API's (`client.predict(**row)`).
EXAMPLES = (
    {
        "text": "The city council voted on Tuesday to turn the old railway station into a "
        "public library. The building has stood empty for twelve years. Work starts in the "
        "spring and should take two years; the library will keep the station's clock tower "
        "and its iron roof, and add a reading garden where the tracks used to run.",
    },
    {
        "text": "Researchers followed 2,000 volunteers for ten years and found that those who "
        "walked at least thirty minutes a day slept better and reported less stress. The "
        "effect held across ages and did not depend on walking speed, the team said, which "
        "suggests that regular movement matters more than intensity.",
    },
)


def summarize(
    model_ref: str,
    text: str,
    min_tokens: int = 30,
    max_tokens: int = 130,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio injects its tracker here)
) -> Iterator[str]:
    """Yields nothing visible while decoding (beam search cannot stream), then the summary.

    The empty updates after each step keep the handler cancellable and drive the progress bar.
    """
    if is_blank(text):
        warn("Paste some text to summarize first.")
        yield ""
        return
    loaded = MODELS.get(TASK, model_ref, load_seq2seq)
    tokenizer, model = loaded.tokenizer, loaded.model
    window = context_window(tokenizer, model)
    min_tokens, max_tokens = int(min_tokens), int(max_tokens)
    if max_tokens > window:
        warn(f"The model writes at most {window} tokens, so the summary stops there.")
        max_tokens = window
    if min_tokens > max_tokens:
        warn(f"The minimum length {min_tokens} exceeds the maximum; using {max_tokens} for both.")
        min_tokens = max_tokens
    ids = fit_tokens(tokenizer(text.strip())["input_ids"], window, keep="start", what="text")
    input_ids = torch.tensor([ids], device=device())
    run = BackgroundRun("summarization-generate")

    def generate() -> torch.Tensor:
        with torch.inference_mode():
            return model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                min_length=min_tokens,
                max_length=max_tokens,
                stopping_criteria=run.stopping_criteria,
            )

    for update in run.updates(generate):
        if update.done:
            yield tokenizer.decode(update.result[0], skip_special_tokens=True).strip()
        else:
            progress((min(update.steps, max_tokens), max_tokens), desc="Summarizing", unit="tokens")
            yield gr.skip()


def build(config: AppConfig) -> None:
    tab = ModelTab.create(config, TASK, load_seq2seq)
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(
                label="Text", lines=12, value=EXAMPLES[0]["text"], placeholder="Paste an article…"
            )
            with gr.Row():
                min_tokens = gr.Slider(5, 200, value=30, step=1, label="Minimum length (tokens)")
                max_tokens = gr.Slider(10, 400, value=130, step=1, label="Maximum length (tokens)")
            with gr.Row():
                run = gr.Button("Summarize", variant="primary")
                stop = gr.Button("Stop", variant="stop")
            examples(EXAMPLES, {"text": text})
        with gr.Column():
            summary = gr.Textbox(label="Summary", lines=12, buttons=["copy"])
            notice = notice_area()
    tab.run(
        run.click,
        summarize,
        inputs=[text, min_tokens, max_tokens],
        outputs=[summary],
        notice=notice,
        api_name="summarize",
        stop=stop,
        stopped="Stopped before the summary was written.",
    )
