"""Reversal data: random integer lists, their reverses, and the padded id arrays the model reads.

Raw tokens are integers in [0, vocab_size). The model's ids shift them past the special ids
(jax_models.seq2seq: PAD_ID, START_ID, END_ID), so padding never collides with a real token.
Every split is padded to one fixed length, so jit compiles the train step once.
"""

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from jax_models.seq2seq import END_ID, NUM_SPECIAL_TOKENS, PAD_ID, START_ID

Batch = dict[str, np.ndarray]


def generate_data(
    num_samples: int = 10000,
    seq_len: int = 10,
    vocab_size: int = 10,
    seed: int = 0,
    *,
    length_range: tuple[int, int] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Source lists of uniform random tokens and their reversed targets.

    Every source has `seq_len` tokens, or with `length_range=(low, high)` a length drawn
    uniformly from low..high inclusive.
    """
    rng = np.random.default_rng(seed)
    if length_range is None:
        lengths = np.full(num_samples, seq_len)
    else:
        low, high = length_range
        if not 1 <= low <= high:
            raise ValueError(f"length_range must satisfy 1 <= low <= high, got {length_range}")
        lengths = rng.integers(low, high + 1, size=num_samples)
    sources = [rng.integers(0, vocab_size, size=length) for length in lengths]
    return sources, [source[::-1].copy() for source in sources]


def to_ids(tokens: Sequence[int] | np.ndarray) -> np.ndarray:
    """Raw tokens -> model ids (shifted past the special ids)."""
    return np.asarray(tokens, np.int32) + NUM_SPECIAL_TOKENS


def from_ids(ids: Sequence[int] | np.ndarray) -> list[int]:
    """Model ids up to the first special id (END, or a stray PAD/START) -> raw tokens."""
    tokens = []
    for token_id in np.asarray(ids).tolist():
        if token_id < NUM_SPECIAL_TOKENS:
            break
        tokens.append(token_id - NUM_SPECIAL_TOKENS)
    return tokens


def pad_sequences(
    seqs: Sequence[Sequence[int] | np.ndarray], pad_value: int = PAD_ID, length: int | None = None
) -> np.ndarray:
    """Id sequences -> (len(seqs), length) int32 array, right-padded with `pad_value`.

    `length` defaults to the longest sequence. Refuses sequences that already contain
    `pad_value`, because the loss and attention masks would silently drop those tokens.
    """
    if any(np.any(np.asarray(seq) == pad_value) for seq in seqs):
        raise ValueError(f"a sequence contains the padding id {pad_value}; shift tokens first")
    longest = max((len(seq) for seq in seqs), default=0)
    length = longest if length is None else length
    if longest > length:
        raise ValueError(f"a sequence of length {longest} does not fit in length {length}")
    padded = np.full((len(seqs), length), pad_value, np.int32)
    for row, seq in enumerate(seqs):
        padded[row, : len(seq)] = seq
    return padded


def encode(
    sources: Sequence[np.ndarray], targets: Sequence[np.ndarray], max_len: int
) -> dict[str, np.ndarray]:
    """Raw source/target lists -> the padded arrays one training example needs.

    source: source ids (max_len). decoder_input: START then the target ids, what each decoder
    step sees as the previous token under teacher forcing (max_len + 1). target: the target
    ids then END, what each step must predict (max_len + 1).
    """
    target_ids = [to_ids(target) for target in targets]
    return {
        "source": pad_sequences([to_ids(source) for source in sources], length=max_len),
        "decoder_input": pad_sequences(
            [np.concatenate([[START_ID], ids]) for ids in target_ids], length=max_len + 1
        ),
        "target": pad_sequences(
            [np.concatenate([ids, [END_ID]]) for ids in target_ids], length=max_len + 1
        ),
    }


def prepare_batch(
    dataset: Mapping[str, np.ndarray],
    batch_size: int,
    rng: np.random.Generator | None = None,
    *,
    drop_remainder: bool = True,
) -> Iterator[Batch]:
    """Yields batches of an `encode`d dataset, shuffled by `rng` (in order when None).

    The arrays may be jax arrays already on device; only the index gather happens per batch.
    """
    size = len(next(iter(dataset.values())))
    order = np.arange(size) if rng is None else rng.permutation(size)
    stop = size - size % batch_size if drop_remainder else size
    for start in range(0, stop, batch_size):
        indices = order[start : start + batch_size]
        yield {name: array[indices] for name, array in dataset.items()}
