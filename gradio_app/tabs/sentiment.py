"""Sentiment: a text-classification pipeline, reporting neutral when it is not confident."""

from __future__ import annotations

from functools import partial

import gradio as gr

from gradio_app.config import AppConfig
from gradio_app.feedback import is_blank, user_facing, warn
from gradio_app.hf_models import load_text_classifier
from gradio_app.loaders import MODELS
from gradio_app.tabs.common import queue_settings, refresh_after, status_line
from gradio_app.window import context_window, fit_tokens

TASK = "sentiment"
NEUTRAL = "neutral"
DEFAULT_THRESHOLD = 0.7


def classify_sentiment(
    model_ref: str, text: str, threshold: float = DEFAULT_THRESHOLD
) -> tuple[str, float | None, dict[str, float] | None]:
    """Returns the verdict (the top label, or neutral below `threshold`), the top label's
    confidence, and every label's score."""
    if is_blank(text):
        warn("Type some text to classify first.")
        return "", None, None
    classifier = MODELS.get(TASK, model_ref, load_text_classifier)
    window = context_window(classifier.tokenizer, classifier.model)
    fit_tokens(classifier.tokenizer(text)["input_ids"], window, keep="start", what="text")
    scores = classifier(text, top_k=None, truncation=True, max_length=window)
    by_label = {entry["label"].lower(): float(entry["score"]) for entry in scores}
    top_label = max(by_label, key=by_label.__getitem__)
    confidence = by_label[top_label]
    verdict = top_label if confidence >= float(threshold) else NEUTRAL
    return verdict, confidence, by_label


def build(config: AppConfig) -> None:
    model_ref = config.model(TASK)
    describe = partial(MODELS.describe, model_ref, load_text_classifier)
    status = status_line(describe)
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", lines=5, value="I really loved this movie!")
            threshold = gr.Slider(
                0.0,
                1.0,
                value=DEFAULT_THRESHOLD,
                step=0.01,
                label="Neutral below this confidence",
            )
            classify = gr.Button("Classify", variant="primary")
        with gr.Column():
            verdict = gr.Textbox(label="Sentiment", interactive=False)
            confidence = gr.Number(label="Confidence", precision=3, interactive=False)
            scores = gr.Label(label="Scores", show_heading=False)
    event = gr.on(
        [classify.click, text.submit],
        user_facing(TASK, partial(classify_sentiment, model_ref)),
        inputs=[text, threshold],
        outputs=[verdict, confidence, scores],
        api_name="sentiment",
        **queue_settings(config, TASK),
    )
    refresh_after(event, status, describe)
