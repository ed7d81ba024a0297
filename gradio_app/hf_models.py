"""How each Hugging Face model is loaded.

transformers 5 dropped the summarization and question-answering pipelines, so those load the
model classes directly; text generation and text classification still use `pipeline()`.
PyTorch runs all of them, on the GPU when one is present.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    Pipeline,
    pipeline,
)


@functools.cache
def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class TokenizerAndModel:
    tokenizer: Any
    model: torch.nn.Module


def load_text_generator(model_ref: str) -> Pipeline:
    """Used by the next-word, story and chatbot tabs (one load when they name the same model)."""
    return pipeline("text-generation", model=model_ref, device=device())


def load_text_classifier(model_ref: str) -> Pipeline:
    return pipeline("text-classification", model=model_ref, device=device())


def load_seq2seq(model_ref: str) -> TokenizerAndModel:
    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_ref).to(device()).eval()
    return TokenizerAndModel(tokenizer, model)


def load_question_answering(model_ref: str) -> TokenizerAndModel:
    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    if not tokenizer.is_fast:
        raise ValueError("question answering needs a fast tokenizer (tokenizer.json)")
    model = AutoModelForQuestionAnswering.from_pretrained(model_ref).to(device()).eval()
    return TokenizerAndModel(tokenizer, model)


def load_diffusion(model_ref: str) -> Any:
    """A diffusers text-to-image pipeline (half precision on the GPU, full on the CPU)."""
    from diffusers import DiffusionPipeline

    dtype = torch.float16 if device().type == "cuda" else torch.float32
    diffusion = DiffusionPipeline.from_pretrained(model_ref, dtype=dtype).to(device())
    diffusion.set_progress_bar_config(disable=True)  # the tab shows its own progress bar
    return diffusion
