"""Question answering: the best answer span from start/end logits, or an honest "not found".

transformers 5 has no question-answering pipeline, so the span search is done here: the most
likely (start, end) pair inside the context, at most `MAX_ANSWER_TOKENS` long.
"""

from __future__ import annotations

import gradio as gr
import torch

from gradio_app.config import AppConfig
from gradio_app.feedback import is_blank, warn
from gradio_app.hf_models import load_question_answering
from gradio_app.loaders import MODELS
from gradio_app.tabs.common import ModelTab, examples, notice_area
from gradio_app.window import context_window, warn_truncated
from jax_models.errors import UserError

TASK = "question_answering"
ANSWER_LABEL = "answer"
NO_ANSWER = "The context does not contain an answer to this question."
MAX_ANSWER_TOKENS = 30
DEFAULT_MIN_SCORE = 0.2
Highlights = list[tuple[str, str | None]]
# Keyed by the handler's parameter names, which are also the API's (`client.predict(**row)`).
EXAMPLES = (
    {
        "question": "Where is the Eiffel Tower?",
        "context": "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. "
        "It was completed in 1889 for the World's Fair.",
    },
    {
        "question": "How long is the Nile?",
        "context": "The Nile flows north through eleven countries and is about 6,650 "
        "kilometres long, which makes it one of the longest rivers in the world.",
    },
    {
        "question": "Who painted the ceiling?",
        "context": "The chapel was built in the 1470s; its walls were decorated by several "
        "Renaissance painters, and Michelangelo painted the ceiling between 1508 and 1512.",
    },
)


def _best_span(
    start_logits: torch.Tensor, end_logits: torch.Tensor, in_context: torch.Tensor
) -> tuple[int, int, float, float]:
    """The likeliest context span and its probability, plus the probability of "no answer"
    (start and end both on the leading [CLS] token, which SQuAD 2 models are trained to use)."""
    allowed = in_context.clone()
    allowed[0] = True
    start_p = start_logits.masked_fill(~allowed, float("-inf")).softmax(-1)
    end_p = end_logits.masked_fill(~allowed, float("-inf")).softmax(-1)
    pair = start_p[:, None] * end_p[None, :]
    pair = pair * in_context[:, None] * in_context[None, :]
    pair = pair.triu().tril(MAX_ANSWER_TOKENS - 1)
    flat = int(pair.argmax())
    start, end = divmod(flat, pair.shape[1])
    return start, end, float(pair[start, end]), float(start_p[0] * end_p[0])


def answer_question(
    model_ref: str, question: str, context: str, min_score: float = DEFAULT_MIN_SCORE
) -> tuple[str, float | None, Highlights | None]:
    """Returns the answer (or `NO_ANSWER`), its score, and the context split into spans with
    the answer labelled for highlighting."""
    if is_blank(question) or is_blank(context):
        warn("Type both a question and a context first.")
        return "", None, None
    loaded = MODELS.get(TASK, model_ref, load_question_answering)
    tokenizer, model = loaded.tokenizer, loaded.model
    window = context_window(tokenizer, model)
    question_tokens = len(tokenizer(question)["input_ids"])
    if question_tokens > window // 2:
        raise UserError(
            f"The question has {question_tokens} tokens; shorten it to at most {window // 2} "
            "so the context fits in the model's window."
        )
    total = len(tokenizer(question, context)["input_ids"])
    if total > window:
        warn_truncated("question and context", total, window, keep="start")
    encoding = tokenizer(
        question,
        context,
        truncation="only_second",
        max_length=window,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    offsets = encoding.pop("offset_mapping")[0].tolist()
    in_context = torch.tensor([sequence == 1 for sequence in encoding.sequence_ids(0)])
    with torch.inference_mode():
        outputs = model(**encoding.to(model.device))
    start, end, score, no_answer_score = _best_span(
        outputs.start_logits[0].float().cpu(), outputs.end_logits[0].float().cpu(), in_context
    )
    if score < float(min_score) or no_answer_score > score:
        return NO_ANSWER, score, [(context, None)]
    first, last = offsets[start][0], offsets[end][1]
    highlights = [(context[:first], None), (context[first:last], ANSWER_LABEL)]
    highlights.append((context[last:], None))
    return context[first:last], score, [(text, label) for text, label in highlights if text]


def build(config: AppConfig) -> None:
    tab = ModelTab.create(config, TASK, load_question_answering)
    with gr.Row():
        with gr.Column():
            question = gr.Textbox(label="Question", value=EXAMPLES[0]["question"])
            context = gr.Textbox(label="Context", lines=8, value=EXAMPLES[0]["context"])
            min_score = gr.Slider(
                0.0, 1.0, value=DEFAULT_MIN_SCORE, step=0.01, label="Minimum answer confidence"
            )
            ask = gr.Button("Answer", variant="primary")
            examples(EXAMPLES, {"question": question, "context": context})
        with gr.Column():
            answer = gr.Textbox(label="Answer", interactive=False)
            score = gr.Number(label="Score", precision=3, interactive=False)
            highlighted = gr.HighlightedText(
                label="Context", color_map={ANSWER_LABEL: "green"}, show_legend=False
            )
            notice = notice_area()
    tab.run(
        [ask.click, question.submit],
        answer_question,
        inputs=[question, context, min_score],
        outputs=[answer, score, highlighted],
        notice=notice,
        api_name="answer",
    )
