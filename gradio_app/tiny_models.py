"""Tiny, randomly initialised stand-ins for the app's Hugging Face models, built without the hub.

`python -m gradio_app.tiny_models DIR` writes them under DIR with the `DIR/models.json` that
`python -m gradio_app --models DIR/models.json` reads: the whole interface in seconds on a CPU,
with no download (the outputs are gibberish). The tests build the same models.

Each builder writes a directory that `from_pretrained` loads exactly like a downloaded
checkpoint, so whatever uses them exercises the app's real loading code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    CLIPTextConfig,
    CLIPTextModel,
    DistilBertConfig,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

CORPUS = [
    "Once upon a time there was a little robot who loved to read stories.",
    "The weather today is sunny and warm, a perfect day for a walk in the park.",
    "Gradio makes it easy to put machine learning models in front of people.",
    "The Eiffel Tower is in Paris and was completed in 1889.",
    "I really loved this movie, the acting was wonderful and the story was great.",
    "This was a terrible film, boring and far too long.",
    "Hello, how are you doing today? I am fine, thank you.",
    "A photo of an astronaut riding a horse on the moon.",
]
WINDOW = 64  # context length of every tiny text model, small enough to exercise truncation
MODELS_FILE = "models.json"


def _byte_level_tokenizer(specials: list[str], template: str | None) -> Tokenizer:
    """A GPT-2/BART style byte-level BPE, so decoded tokens keep their leading spaces and any
    text (CJK, emoji) encodes, one byte per token where the corpus taught no merge."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    if template:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=template,
            special_tokens=[(token, tokenizer.token_to_id(token)) for token in ("<s>", "</s>")],
        )
    return tokenizer


def _word_level_tokenizer(lowercase: bool) -> Tokenizer:
    """A BERT style word-level tokenizer with [CLS]/[SEP] pairs, offsets and sequence ids."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordLevelTrainer(special_tokens=specials, show_progress=False)
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tokenizer


def _bert_fast_tokenizer(lowercase: bool, max_length: int) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=_word_level_tokenizer(lowercase),
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"],  # DistilBERT takes no token types
    )


def _save(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, directory: Path) -> Path:
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_gpt2(directory: Path) -> Path:
    """Stands in for `gpt2` and `microsoft/DialoGPT-medium` (same architecture)."""
    eos = "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_tokenizer([eos], template=None),
        bos_token=eos,
        eos_token=eos,
        unk_token=eos,
        model_max_length=WINDOW,
    )
    eos_id = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=WINDOW,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )
    return _save(GPT2LMHeadModel(config), tokenizer, directory)


def build_bart(directory: Path) -> Path:
    """Stands in for `facebook/bart-large-cnn`."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_tokenizer(specials, template="<s> $A </s>"),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=WINDOW,
    )
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=WINDOW,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    return _save(BartForConditionalGeneration(config), tokenizer, directory)


def _distilbert_config(tokenizer: PreTrainedTokenizerFast, **extra: object) -> DistilBertConfig:
    return DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=16,
        hidden_dim=32,
        n_layers=1,
        n_heads=2,
        max_position_embeddings=WINDOW,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def build_sentiment(directory: Path) -> Path:
    """Stands in for `distilbert-base-uncased-finetuned-sst-2-english` (same label names)."""
    tokenizer = _bert_fast_tokenizer(lowercase=True, max_length=WINDOW)
    config = _distilbert_config(
        tokenizer,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    return _save(DistilBertForSequenceClassification(config), tokenizer, directory)


def build_question_answering(directory: Path) -> Path:
    """Stands in for `distilbert-base-cased-distilled-squad`.

    The span head is zeroed, so every start and end is equally likely: the best span is then
    the first context token, with a probability far below any sensible confidence threshold.
    """
    tokenizer = _bert_fast_tokenizer(lowercase=False, max_length=WINDOW)
    model = DistilBertForQuestionAnswering(_distilbert_config(tokenizer))
    torch.nn.init.zeros_(model.qa_outputs.weight)
    torch.nn.init.zeros_(model.qa_outputs.bias)
    return _save(model, tokenizer, directory)


def build_stable_diffusion(directory: Path) -> Path:
    """A Stable Diffusion pipeline with the component sizes of diffusers' own fast tests.

    Its native size is 64 pixels (a 32-latent UNet, a VAE that halves once), which the image
    tab takes as its default, so the defaults paint in seconds on a CPU.
    """
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
    )
    tokenizer = _bert_fast_tokenizer(lowercase=True, max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(directory)
    return directory


def build_tiny_models(root: Path) -> dict[str, str]:
    """Builds every tiny model under `root`; returns the task -> directory map the app reads."""
    torch.manual_seed(0)
    gpt2 = str(build_gpt2(root / "gpt2"))
    return {
        "summarization": str(build_bart(root / "bart")),
        "next_word": gpt2,
        "story": gpt2,
        "chatbot": gpt2,
        "sentiment": str(build_sentiment(root / "sentiment")),
        "question_answering": str(build_question_answering(root / "qa")),
        "image_generation": str(build_stable_diffusion(root / "stable_diffusion")),
    }


def write_models_file(models: dict[str, str], path: Path) -> Path:
    """Writes the `--models` file (JSON, absolute directories, so it works from anywhere)."""
    path.write_text(json.dumps(models, indent=2) + "\n")
    return path


def write_tiny_models(root: Path) -> Path:
    """Builds the tiny models under `root` and returns the `--models` file naming them."""
    root.mkdir(parents=True, exist_ok=True)
    return write_models_file(build_tiny_models(root.resolve()), root / MODELS_FILE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gradio_app.tiny_models",
        description="Write tiny random stand-ins for the app's Hugging Face models (no download) "
        "and the models file that serves them.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="where to write the models")
    args = parser.parse_args(argv)
    try:
        models_file = write_tiny_models(args.directory)
    except OSError as error:
        print(
            f"error: cannot write the tiny models under {args.directory} ({error.strerror}); "
            "pass a directory you can write to.",
            file=sys.stderr,
        )
        sys.exit(2)
    print(f"Wrote the tiny models and {models_file}; serve them with")
    print(f"  python -m gradio_app --models {models_file}")


if __name__ == "__main__":
    main()
