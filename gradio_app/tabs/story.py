"""Story: sampled continuation of a prompt by the text-generation model, streamed.

The model generates from the prompt's token ids, cut to the window, never from text decoded
from them: a cut can split a character (CJK, emoji) whose bytes span several tokens, and
re-encoding that text gives more tokens than the window holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr
import torch

from gradio_app.config import AppConfig
from gradio_app.feedback import is_blank, warn
from gradio_app.generation import SAMPLING_LOCK, BackgroundRun, checked_seed
from gradio_app.hf_models import load_text_generator
from gradio_app.loaders import MODELS
from gradio_app.tabs.common import ModelTab, examples, notice_area
from gradio_app.window import context_window, fit_tokens, new_token_budget

TASK = "story"
# Keyed by the handler's parameter names, which are also the API's (`client.predict(**row)`).
EXAMPLES = (
    {"prompt": "Once upon a time"},
    {"prompt": "The old lighthouse keeper opened the door and saw"},
    {"prompt": "In the year 2300, the last library on Earth"},
)


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
    seed = checked_seed(seed)
    generator = MODELS.get(TASK, model_ref, load_text_generator)
    tokenizer, model = generator.tokenizer, generator.model
    window = context_window(tokenizer, model)
    max_new_tokens = new_token_budget(window, int(max_new_tokens))
    ids = tokenizer(prompt)["input_ids"]
    kept = fit_tokens(ids, window - max_new_tokens, keep="end", what="opening")
    input_ids = torch.tensor([kept], device=model.device)
    run = BackgroundRun("story-generate", tokenizer)

    def generate() -> None:
        with SAMPLING_LOCK, torch.inference_mode():
            torch.manual_seed(seed)
            model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=max(float(temperature), 1e-3),
                top_p=float(top_p),
                pad_token_id=tokenizer.eos_token_id,
                streamer=run.streamer,
                stopping_criteria=run.stopping_criteria,
            )

    for update in run.updates(generate):
        yield prompt + update.text


def build(config: AppConfig) -> None:
    tab = ModelTab.create(config, TASK, load_text_generator)
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Opening", lines=4, value=EXAMPLES[0]["prompt"])
            max_new_tokens = gr.Slider(10, 500, value=120, step=10, label="Max length (new tokens)")
            temperature = gr.Slider(0.1, 2.0, value=0.9, step=0.05, label="Temperature")
            top_p = gr.Slider(0.1, 1.0, value=0.95, step=0.01, label="Top-p")
            seed = gr.Number(value=0, precision=0, label="Seed")
            with gr.Row():
                write = gr.Button("Write story", variant="primary")
                stop = gr.Button("Stop", variant="stop")
            examples(EXAMPLES, {"prompt": prompt})
        with gr.Column():
            story = gr.Textbox(label="Story", lines=18, buttons=["copy"])
            notice = notice_area()
    tab.run(
        write.click,
        tell_story,
        inputs=[prompt, max_new_tokens, temperature, top_p, seed],
        outputs=[story],
        notice=notice,
        api_name="story",
        stop=stop,
        stopped="Stopped. The story above is unfinished.",
    )
