"""Chatbot: a DialoGPT-style model that sees the conversation so far, cut to its window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
import torch

from gradio_app.config import AppConfig
from gradio_app.feedback import inform, is_blank, warn
from gradio_app.generation import BackgroundRun
from gradio_app.hf_models import load_text_generator
from gradio_app.loaders import MODELS
from gradio_app.tabs.common import ModelTab, examples, notice_area
from gradio_app.window import context_window, fit_tokens

TASK = "chatbot"
REPLY_TOKENS = 100
Message = dict[str, Any]
# Keyed by the handler's parameter names, which are also the API's (`client.predict(**row)`).
EXAMPLES = (
    {"message": "Hello! How are you today?"},
    {"message": "What should I cook for dinner tonight?"},
    {"message": "Tell me something interesting about the moon."},
)


def message_text(message: Message) -> str:
    """The text of a chat message, whether its content is a string or Gradio's list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    return " ".join(p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "text")


def conversation_ids(tokenizer: Any, turns: list[str], budget: int) -> list[int]:
    """Each turn followed by the end-of-text token (DialoGPT's turn separator), keeping the
    newest turns that fit in `budget` tokens; the newest turn alone is cut if it must be."""
    encoded = [tokenizer(turn)["input_ids"] + [tokenizer.eos_token_id] for turn in turns]
    newest = fit_tokens(encoded[-1], budget, keep="end", what="message")
    kept = [newest]
    used = len(newest)
    for turn in reversed(encoded[:-1]):
        if used + len(turn) > budget:
            break
        kept.insert(0, turn)
        used += len(turn)
    dropped = len(encoded) - len(kept)
    if dropped:
        inform(f"The {dropped} oldest messages no longer fit the model's window and were left out.")
    return [token for turn in kept for token in turn]


def chat(model_ref: str, message: str, history: list[Message] | None) -> Iterator[list[Message]]:
    """Yields the conversation with the reply growing token by token."""
    history = list(history or [])
    if is_blank(message):
        warn("Type a message first.")
        yield history
        return
    generator = MODELS.get(TASK, model_ref, load_text_generator)
    tokenizer, model = generator.tokenizer, generator.model
    window = context_window(tokenizer, model)
    reply_tokens = min(REPLY_TOKENS, window // 2)  # the rest of the window holds the history
    turns = [text for text in map(message_text, history) if text.strip()] + [message]
    input_ids = torch.tensor(
        [conversation_ids(tokenizer, turns, window - reply_tokens)], device=model.device
    )
    history += [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
    yield [*history]
    run = BackgroundRun("chat-generate", tokenizer)

    def generate() -> None:
        with torch.inference_mode():
            model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=reply_tokens,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
                streamer=run.streamer,
                stopping_criteria=run.stopping_criteria,
            )

    for update in run.updates(generate):
        history[-1] = {"role": "assistant", "content": update.text.strip()}
        yield [*history]


def build(config: AppConfig) -> None:
    tab = ModelTab.create(config, TASK, load_text_generator)
    conversation = gr.Chatbot(label="Conversation", height=420)
    notice = notice_area()
    message = gr.Textbox(label="Message", placeholder="Say something…", submit_btn="Send")
    with gr.Row():
        stop = gr.Button("Stop", variant="stop")
        gr.ClearButton([conversation, message, notice], value="Clear conversation")
    examples(EXAMPLES, {"message": message})
    # A failed turn keeps the conversation: it is the user's, and the next request's input.
    event = tab.run(
        message.submit,
        chat,
        inputs=[message, conversation],
        outputs=[conversation],
        notice=notice,
        api_name="chat",
        keep=[conversation],
        stop=stop,
        stopped="Stopped. The last reply is unfinished.",
    )
    # Emptied once the reply is written, so a failed or stopped turn leaves the message to resend.
    event.success(lambda: "", outputs=message, queue=False, api_visibility="private")
