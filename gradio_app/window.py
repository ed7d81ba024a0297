"""Fitting text into a model's context window, and telling the user when something was cut."""

from __future__ import annotations

from typing import Any, Literal

from gradio_app.feedback import warn


def context_window(tokenizer: Any, model: Any) -> int:
    """The most tokens the model reads: the tighter of the tokenizer's and the model's limits."""
    limits = [tokenizer.model_max_length]
    for name in ("max_position_embeddings", "n_positions"):
        limit = getattr(model.config, name, None)
        if isinstance(limit, int) and limit > 0:
            limits.append(limit)
    return min(limits)


def fit_tokens(ids: list[int], budget: int, keep: Literal["start", "end"], what: str) -> list[int]:
    """Keeps the start (to read a document) or the end (to continue a text) of `ids`, and
    warns the user when anything was dropped."""
    if len(ids) <= budget:
        return ids
    warn_truncated(what, len(ids), budget, keep)
    return ids[:budget] if keep == "start" else ids[-budget:]


def warn_truncated(what: str, total: int, budget: int, keep: Literal["start", "end"]) -> None:
    part = "first" if keep == "start" else "last"
    warn(
        f"The {what} has {total} tokens but the model reads at most {budget}, "
        f"so only the {part} {budget} were used."
    )


def new_token_budget(window: int, wanted: int) -> int:
    """New tokens to generate, capped at half the window so the prompt keeps the other half."""
    allowed = max(window // 2, 1)
    if wanted > allowed:
        warn(f"The model reads at most {window} tokens, so at most {allowed} new ones are written.")
    return min(wanted, allowed)
