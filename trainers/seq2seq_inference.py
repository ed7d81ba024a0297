"""A trained reversal model behind one call, for the Gradio app's "Sequence reversal" tab."""

import json
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from jax_models.errors import UserError
from jax_models.seq2seq import Seq2Seq
from trainers import seq2seq_data
from trainers.checkpoint import checkpoint_dir
from trainers.inference import restore_best
from trainers.run_files import results_path
from trainers.seq2seq_train import (
    checkpoint_like,
    create_model,
    create_optimizer,
    load_checkpoint,
)


@partial(nnx.jit, static_argnums=2)
def greedy_decode(
    model: Seq2Seq, source: jax.Array, num_steps: int
) -> tuple[jax.Array, jax.Array | None]:
    return model.greedy_decode(source, num_steps)


class Reverser:
    """Greedy decoding of one list with the model's attention weights alongside.

    Accepts the lengths the model was trained on, min_len..max_len (a fixed-length model
    accepts only max_len; train with `--config.min_seq_len=1` for any shorter list). Every
    input is padded to `max_len`, so decoding compiles once however long the list is.
    """

    def __init__(self, model: Seq2Seq, *, vocab_size: int, min_len: int, max_len: int):
        self.vocab_size = vocab_size
        self.min_len = min_len
        self.max_len = max_len
        self.uses_attention = model.uses_attention
        self._model = model

    def reverse(self, tokens: list[int]) -> tuple[list[int], np.ndarray]:
        """The model's output tokens and its attention weights (output_len, input_len).

        Without attention (the ablation model) the weights are all zeros: that model reads one
        fixed summary of the input, not positions.
        """
        if not self.min_len <= len(tokens) <= self.max_len:
            lengths = (
                f"exactly {self.max_len}"
                if self.min_len == self.max_len
                else f"between {self.min_len} and {self.max_len}"
            )
            raise UserError(
                f"This model was trained on lists of {lengths} tokens; got {len(tokens)}."
            )
        outside = [
            token
            for token in tokens
            if not (isinstance(token, int | np.integer) and 0 <= token < self.vocab_size)
        ]
        if outside:
            raise UserError(
                f"Tokens must be integers from 0 to {self.vocab_size - 1}; got {outside}."
            )
        source = seq2seq_data.pad_sequences([seq2seq_data.to_ids(tokens)], length=self.max_len)
        predicted, weights = greedy_decode(self._model, jnp.asarray(source), self.max_len + 1)
        output = seq2seq_data.from_ids(predicted[0])
        if weights is None:
            return output, np.zeros((len(output), len(tokens)), np.float32)
        return output, np.asarray(weights[0, : len(output), : len(tokens)])


def load_reverser(workdir: str | Path) -> Reverser:
    """The best checkpoint that `python -m scripts.train --config=configs/seq2seq.py` wrote."""
    workdir = Path(workdir)
    results_file = results_path(workdir, "seq2seq")
    checkpoints = checkpoint_dir(workdir, "seq2seq")
    train_again = f"run `python -m scripts.train --config=configs/seq2seq.py --workdir={workdir}`"
    if not results_file.is_file() or not checkpoints.is_dir():
        raise UserError(f"No trained seq2seq model in {workdir}; {train_again} first.")
    try:
        config = ml_collections.ConfigDict(json.loads(results_file.read_text())["config"])
        model = create_model(config)
        optimizer = create_optimizer(model, config)
        max_len = int(config.seq_len)
        min_len = int(config.get("min_seq_len") or max_len)  # 0: every list is max_len long
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(
            f"{results_file} does not describe a seq2seq model this code can build ({error}); "
            f"{train_again} again."
        ) from error
    restored = restore_best(
        checkpoints,
        checkpoint_like(model, optimizer),
        best_metric="val_token_accuracy",
        train_again=f"{train_again} again.",
    )
    load_checkpoint(model, optimizer, restored)
    return Reverser(model, vocab_size=config.vocab_size, min_len=min_len, max_len=max_len)
