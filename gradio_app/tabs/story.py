"""Story: sampled continuation of a prompt through the text-generation pipeline, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import gradio as gr
import torch

from gradio_app.config import AppConfig
from gradio_app.feedback import is_blank, user_facing, warn
from gradio_app.generation import SAMPLING_LOCK, BackgroundRun
from gradio_app.hf_models import load_text_generator
from gradio_app.loaders import MODELS
from gradio_app.tabs.common import queue_settings, refresh_after, status_line
from gradio_app.window import context_window, fit_tokens, new_token_budget

TASK = "story"


def tell_story(
    model_ref: str,
    prompt: str,
    max_new_tokens: int = 120,
    temperature: float = 0.9,
    top_p: float = 0.95,
    seed: int = 0,
) -> Iterator[str]:
    """Yields the prompt followed by the story so far, one update per generated token."""
    if is_blank(prompt):
        warn("Type the opening of a story first.")
        yield ""
        return
    generator = MODELS.get(TASK, model_ref, load_text_generator)
    tokenizer = generator.tokenizer
    window = context_window(tokenizer, generator.model)
    max_new_tokens = new_token_budget(window, int(max_new_tokens))
    ids = tokenizer(prompt)["input_ids"]
    kept = fit_tokens(ids, window - max_new_tokens, keep="end", what="opening")
    model_prompt = prompt if len(kept) == len(ids) else tokenizer.decode(kept)
    run = BackgroundRun("story-generate", tokenizer)

    def generate() -> None:
        with SAMPLING_LOCK:
            torch.manual_seed(int(seed))
            generator(
                model_prompt,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=max(float(temperature), 1e-3),
                top_p=float(top_p),
                return_full_text=False,
                pad_token_id=tokenizer.eos_token_id,
                streamer=run.streamer,
                stopping_criteria=run.stopping_criteria,
            )

    for update in run.updates(generate):
        yield prompt + update.text


def build(config: AppConfig) -> None:
    model_ref = config.model(TASK)
    describe = partial(MODELS.describe, model_ref, load_text_generator)
    status = status_line(describe)
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Opening", lines=4, value="Once upon a time")
            max_new_tokens = gr.Slider(10, 500, value=120, step=10, label="Max length (new tokens)")
            temperature = gr.Slider(0.1, 2.0, value=0.9, step=0.05, label="Temperature")
            top_p = gr.Slider(0.1, 1.0, value=0.95, step=0.01, label="Top-p")
            seed = gr.Number(value=0, precision=0, label="Seed")
            with gr.Row():
                write = gr.Button("Write story", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        story = gr.Textbox(label="Story", lines=18, buttons=["copy"])
    event = write.click(
        user_facing(TASK, partial(tell_story, model_ref)),
        inputs=[prompt, max_new_tokens, temperature, top_p, seed],
        outputs=story,
        api_name="story",
        **queue_settings(config, TASK),
    )
    stop.click(None, cancels=[event])
    refresh_after(event, status, describe)
