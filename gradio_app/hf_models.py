"""How each Hugging Face model is loaded.

transformers 5 dropped the summarization and question-answering pipelines, so those load the
model classes directly; text generation and text classification still use `pipeline()`.
PyTorch runs all of them, on the GPU when one is present.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import try_to_load_from_cache
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


# Stable Diffusion 1.x's training size, for a pipeline whose configuration is not on disk yet.
DEFAULT_IMAGE_SIZE = 512


def load_diffusion(model_ref: str) -> Any:
    """A diffusers text-to-image pipeline (half precision on the GPU, full on the CPU)."""
    from diffusers import DiffusionPipeline

    dtype = torch.float16 if device().type == "cuda" else torch.float32
    diffusion = DiffusionPipeline.from_pretrained(model_ref, dtype=dtype).to(device())
    diffusion.set_progress_bar_config(disable=True)  # the tab shows its own progress bar
    return diffusion


def native_image_size(model_ref: str) -> int:
    """The image side a diffusion pipeline paints by default (its UNet's latent size times the
    VAE's upscaling, as diffusers computes it): 512 for Stable Diffusion 1.5, 64 for the tiny
    test pipeline, whose defaults then run in seconds on a CPU.

    Read from the configuration files of a local copy or of the hub cache, without loading the
    pipeline (the tab is built before any model loads); `DEFAULT_IMAGE_SIZE` when neither is
    on disk or the files are not a Stable Diffusion layout.
    """
    unet, vae = _config(model_ref, "unet/config.json"), _config(model_ref, "vae/config.json")
    sample_size = unet.get("sample_size")
    if isinstance(sample_size, list | tuple) and sample_size:
        sample_size = sample_size[0]
    vae_blocks = vae.get("block_out_channels")
    if not isinstance(sample_size, int) or not isinstance(vae_blocks, list) or not vae_blocks:
        return DEFAULT_IMAGE_SIZE
    return sample_size * 2 ** (len(vae_blocks) - 1)


def _config(model_ref: str, name: str) -> dict[str, Any]:
    """One JSON file of a model from its directory or the hub cache; empty when unavailable."""
    directory = Path(model_ref).expanduser()
    if directory.is_dir():
        path: str | Path | None = directory / name
    else:
        try:
            path = try_to_load_from_cache(model_ref, name)
        except ValueError:  # not a valid hub id either
            return {}
    if not isinstance(path, str | Path):  # not cached, or cached as missing
        return {}
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}
