"""Next word: the model's top-k next tokens with probabilities; clicking one appends it."""

from __future__ import annotations

import gradio as gr
import torch

from gradio_app.config import AppConfig
from gradio_app.feedback import is_blank, warn
from gradio_app.hf_models import load_text_generator
from gradio_app.loaders import MODELS
from gradio_app.tabs.common import ModelTab, examples, notice_area
from gradio_app.window import context_window, fit_tokens

TASK = "next_word"
# Keyed by the handler's parameter names, which are also the API's (`client.predict(**row)`).
EXAMPLES = (
    {"prompt": "The weather today is"},
    {"prompt": "Once upon a time there was a"},
    {"prompt": "I would like a cup of"},
)
# Tokens that would be invisible on a label chart, shown as a visible stand-in.
_VISIBLE = {"\n": "↵", "\t": "⇥"}


def _shown(token: str) -> str:
    for raw, visible in _VISIBLE.items():
        token = token.replace(raw, visible)
    return token


def _raw(shown: str) -> str:
    for raw, visible in _VISIBLE.items():
        shown = shown.replace(visible, raw)
    return shown


def next_words(model_ref: str, prompt: str, top_k: int = 10) -> dict[str, float] | None:
    """Maps each of the `top_k` likeliest next tokens (as text, leading space kept) to its
    probability among the tokens that are not special (end-of-text, padding); tokens that
    decode to the same text are merged."""
    if is_blank(prompt):
        warn("Type the start of a sentence first.")
        return None
    generator = MODELS.get(TASK, model_ref, load_text_generator)
    tokenizer, model = generator.tokenizer, generator.model
    window = context_window(tokenizer, model)
    ids = fit_tokens(tokenizer(prompt)["input_ids"], window, keep="end", what="text")
    # End-of-text and other special tokens are not words a person could append.
    special = sorted(set(tokenizer.all_special_ids))
    with torch.inference_mode():
        logits = model(torch.tensor([ids], device=model.device)).logits[0, -1].float()
        logits[special] = float("-inf")
    top_k = min(int(top_k), logits.numel() - len(special))
    probabilities, token_ids = logits.softmax(-1).topk(top_k)
    words: dict[str, float] = {}
    for probability, token_id in zip(probabilities.tolist(), token_ids.tolist(), strict=True):
        word = _shown(tokenizer.decode([token_id]))
        words[word] = words.get(word, 0.0) + probability
    return words


def append_word(prompt: str, selected: gr.SelectData) -> str:
    """Appends the clicked word verbatim (its leading space included)."""
    return (prompt or "") + _raw(str(selected.value))


def build(config: AppConfig) -> None:
    tab = ModelTab.create(config, TASK, load_text_generator)
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Text", lines=4, value=EXAMPLES[0]["prompt"])
            top_k = gr.Slider(1, 30, value=10, step=1, label="How many words")
            predict = gr.Button("Predict next word", variant="primary")
            examples(EXAMPLES, {"prompt": prompt})
        with gr.Column():
            words = gr.Label(label="Next word (click one to append it)", show_heading=False)
            notice = notice_area()
    inputs, outputs = [prompt, top_k], [words]
    tab.run(
        [predict.click, prompt.submit],
        next_words,
        inputs=inputs,
        outputs=outputs,
        notice=notice,
        api_name="next_word",
    )
    appended = words.select(append_word, inputs=prompt, outputs=prompt, api_visibility="private")
    tab.run(appended.then, next_words, inputs=inputs, outputs=outputs, notice=notice)
