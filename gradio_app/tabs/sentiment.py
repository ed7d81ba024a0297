"""Sentiment: a text-classification pipeline, reporting neutral when it is not confident."""

from __future__ import annotations

import gradio as gr

from gradio_app.config import AppConfig
from gradio_app.feedback import is_blank, warn
from gradio_app.hf_models import load_text_classifier
from gradio_app.loaders import MODELS
from gradio_app.tabs.common import ModelTab, examples, notice_area
from gradio_app.window import context_window, fit_tokens

TASK = "sentiment"
NEUTRAL = "neutral"
DEFAULT_THRESHOLD = 0.7
# Keyed by the handler's parameter names, which are also the API's (`client.predict(**row)`).
EXAMPLES = (
    {"text": "I really loved this movie!"},
    {"text": "This was a terrible film, boring and far too long."},
    {"text": "The service was slow, but the food made up for it."},
)


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
    tab = ModelTab.create(config, TASK, load_text_classifier)
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", lines=5, value=EXAMPLES[0]["text"])
            threshold = gr.Slider(
                0.0,
                1.0,
                value=DEFAULT_THRESHOLD,
                step=0.01,
                label="Neutral below this confidence",
            )
            classify = gr.Button("Classify", variant="primary")
            examples(EXAMPLES, {"text": text})
        with gr.Column():
            verdict = gr.Textbox(label="Sentiment", interactive=False)
            confidence = gr.Number(label="Confidence", precision=3, interactive=False)
            scores = gr.Label(label="Scores", show_heading=False)
            notice = notice_area()
    tab.run(
        [classify.click, text.submit],
        classify_sentiment,
        inputs=[text, threshold],
        outputs=[verdict, confidence, scores],
        notice=notice,
        api_name="sentiment",
    )
