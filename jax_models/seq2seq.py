"""LSTM encoder-decoder with additive attention (Bahdanau et al., 2015), in Flax NNX.

The second part of the study: a model that learns to reverse a list of integers. Reversal is
the textbook probe for attention, because output step t must read input position n - 1 - t,
so a working attention shows as an anti-diagonal, and a model without it has to squeeze the
whole list through one fixed-size state. `use_attention=False` builds exactly that ablation:
the encoder's final hidden state stands in for the context at every step.

Token ids are part of the model's interface: id 0 pads, 1 starts and 2 ends a sequence, and a
data token v is id v + NUM_SPECIAL_TOKENS, so padding can never collide with a real token.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

PAD_ID = 0
START_ID = 1
END_ID = 2
NUM_SPECIAL_TOKENS = 3

LSTMCarry = tuple[jax.Array, jax.Array]  # (cell, hidden), the order flax's LSTM cells use


class EncoderOutput(NamedTuple):
    outputs: jax.Array  # (batch, source_len, hidden): one vector per source position
    carry: LSTMCarry  # final (cell, hidden) at each sequence's last real token
    mask: jax.Array  # (batch, source_len) bool: True on real tokens


class Encoder(nnx.Module):
    """Embedding then one LSTM over the source, keeping every output for attention."""

    def __init__(self, num_tokens: int, embedding_size: int, hidden_size: int, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(num_tokens, embedding_size, rngs=rngs)
        # rngs=False: the initial carry is zeros passed explicitly, so the RNN keeps no random
        # stream whose counter would change the model's state on every call.
        self.rnn = nnx.RNN(
            nnx.OptimizedLSTMCell(embedding_size, hidden_size, rngs=rngs),
            return_carry=True,
            rngs=False,
        )
        self.hidden_size = hidden_size

    def __call__(self, source: jax.Array) -> EncoderOutput:
        mask = source != PAD_ID
        zeros = jnp.zeros((source.shape[0], self.hidden_size))
        # seq_lengths makes the final carry the one after each sequence's last real token,
        # not after its padding.
        carry, outputs = self.rnn(
            self.embed(source), initial_carry=(zeros, zeros), seq_lengths=mask.sum(axis=-1)
        )
        return EncoderOutput(outputs, carry, mask)


class AdditiveAttention(nnx.Module):
    """score(s, h_j) = v . tanh(W_q s + W_k h_j), softmax over the real source positions.

    The keys' projection W_k h_j does not depend on the decoder step, so `project_keys` runs
    it once per sequence and the per-step call only adds the query's projection.
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int, *, rngs: nnx.Rngs):
        self.query_projection = nnx.Linear(query_size, attention_size, use_bias=False, rngs=rngs)
        self.key_projection = nnx.Linear(key_size, attention_size, rngs=rngs)
        self.score = nnx.Linear(attention_size, 1, use_bias=False, rngs=rngs)

    def project_keys(self, keys: jax.Array) -> jax.Array:
        return self.key_projection(keys)

    def __call__(
        self, query: jax.Array, keys: jax.Array, projected_keys: jax.Array, mask: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """query (B, Q), keys (B, S, K), projected_keys (B, S, A), mask (B, S) ->
        context (B, K), weights (B, S) that are zero on padding and sum to one."""
        hidden = jnp.tanh(projected_keys + self.query_projection(query)[:, None, :])
        scores = self.score(hidden)[..., 0]
        weights = jax.nn.softmax(jnp.where(mask, scores, -jnp.inf), axis=-1)
        context = jnp.einsum("bs,bsk->bk", weights, keys)
        return context, weights


class Decoder(nnx.Module):
    """One output step: embed the previous token, attend, one LSTM step, project to tokens."""

    def __init__(
        self,
        num_tokens: int,
        embedding_size: int,
        hidden_size: int,
        attention_size: int,
        *,
        use_attention: bool,
        rngs: nnx.Rngs,
    ):
        self.embed = nnx.Embed(num_tokens, embedding_size, rngs=rngs)
        self.attention = (
            AdditiveAttention(hidden_size, hidden_size, attention_size, rngs=rngs)
            if use_attention
            else None
        )
        self.cell = nnx.OptimizedLSTMCell(hidden_size + embedding_size, hidden_size, rngs=rngs)
        self.output_projection = nnx.Linear(hidden_size, num_tokens, rngs=rngs)

    def __call__(
        self,
        carry: LSTMCarry,
        previous_token: jax.Array,
        encoded: EncoderOutput,
        projected_keys: jax.Array | None,
    ) -> tuple[LSTMCarry, jax.Array, jax.Array | None]:
        """Returns the new carry, logits (B, num_tokens) and attention weights (B, S) or None."""
        if self.attention is None:
            context, weights = encoded.carry[1], None
        else:
            # Bahdanau's query is the decoder state before this step's update.
            context, weights = self.attention(
                carry[1], encoded.outputs, projected_keys, encoded.mask
            )
        inputs = jnp.concatenate([context, self.embed(previous_token)], axis=-1)
        carry, output = self.cell(carry, inputs)
        return carry, self.output_projection(output), weights


class Seq2Seq(nnx.Module):
    """Encoder, decoder scanned over output steps, and the choice of which token feeds each step.

    `teacher_forcing` (B, T) picks, per example and step, the ground-truth previous token (True)
    or the model's own previous argmax (False): all True is teacher forcing, all False is
    free-running greedy decoding, and a Bernoulli draw gives scheduled mixtures.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        attention_size: int,
        use_attention: bool,
        rngs: nnx.Rngs,
    ):
        num_tokens = vocab_size + NUM_SPECIAL_TOKENS
        self.encoder = Encoder(num_tokens, embedding_size, hidden_size, rngs=rngs)
        self.decoder = Decoder(
            num_tokens,
            embedding_size,
            hidden_size,
            attention_size,
            use_attention=use_attention,
            rngs=rngs,
        )

    @property
    def uses_attention(self) -> bool:
        return self.decoder.attention is not None

    def __call__(
        self,
        source: jax.Array,
        decoder_inputs: jax.Array,
        teacher_forcing: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array | None]:
        """source (B, S) and decoder_inputs (B, T), starting with START_ID ->
        logits (B, T, num_tokens) and attention weights (B, T, S), or None without attention."""
        if teacher_forcing is None:
            teacher_forcing = jnp.ones(decoder_inputs.shape, bool)
        encoded = self.encoder(source)
        projected_keys = (
            self.decoder.attention.project_keys(encoded.outputs) if self.uses_attention else None
        )
        # The decoder is stateless, so a plain lax.scan over its split state is enough; merging
        # inside the body rebuilds the module from traced parameters at no runtime cost.
        graphdef, state = nnx.split(self.decoder)

        def step(
            carry: tuple[LSTMCarry, jax.Array], inputs: tuple[jax.Array, jax.Array]
        ) -> tuple[tuple[LSTMCarry, jax.Array], tuple[jax.Array, jax.Array | None]]:
            lstm_carry, previous_prediction = carry
            true_previous, use_truth = inputs
            previous_token = jnp.where(use_truth, true_previous, previous_prediction)
            decoder = nnx.merge(graphdef, state)
            lstm_carry, logits, weights = decoder(
                lstm_carry, previous_token, encoded, projected_keys
            )
            return (lstm_carry, jnp.argmax(logits, axis=-1)), (logits, weights)

        initial = (encoded.carry, decoder_inputs[:, 0])
        _, (logits, weights) = jax.lax.scan(
            step, initial, (decoder_inputs.T, jnp.asarray(teacher_forcing).T)
        )
        logits = logits.swapaxes(0, 1)
        return logits, None if weights is None else weights.swapaxes(0, 1)

    def greedy_decode(
        self, source: jax.Array, num_steps: int
    ) -> tuple[jax.Array, jax.Array | None]:
        """Free-running decoding: each step is fed the previous step's argmax, never the truth.

        Returns predicted ids (B, num_steps) and attention weights (B, num_steps, S) or None.
        """
        starts = jnp.full((source.shape[0], num_steps), START_ID, source.dtype)
        logits, weights = self(source, starts, jnp.zeros(starts.shape, bool))
        return jnp.argmax(logits, axis=-1), weights
