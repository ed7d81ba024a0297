"""Seq2seq reversal: data layout, module shapes, masking, decoding, and a short real training."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.seq2seq import get_config
from jax_models.errors import UserError
from jax_models.seq2seq import (
    END_ID,
    NUM_SPECIAL_TOKENS,
    PAD_ID,
    START_ID,
    AdditiveAttention,
    Decoder,
    Encoder,
    Seq2Seq,
)
from scripts import seq2seq_ablation as ablation
from trainers import seq2seq_data, seq2seq_train
from trainers.checkpoint import Checkpointer
from trainers.seq2seq_inference import load_reverser

VOCAB = 10
NUM_TOKENS = VOCAB + NUM_SPECIAL_TOKENS


def tiny_model(use_attention: bool = True, seed: int = 0) -> Seq2Seq:
    return Seq2Seq(
        vocab_size=VOCAB,
        embedding_size=8,
        hidden_size=16,
        attention_size=8,
        use_attention=use_attention,
        rngs=nnx.Rngs(seed),
    )


def encoded_batch(lengths: list[int], max_len: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sources = [rng.integers(0, VOCAB, size=length) for length in lengths]
    return seq2seq_data.encode(sources, [source[::-1] for source in sources], max_len)


# Data.


def test_generate_data_reverses_tokens_in_range():
    sources, targets = seq2seq_data.generate_data(50, seq_len=7, vocab_size=5, seed=3)
    assert len(sources) == len(targets) == 50
    for source, target in zip(sources, targets, strict=True):
        assert len(source) == 7 and source.min() >= 0 and source.max() < 5
        np.testing.assert_array_equal(target, source[::-1])
    again, _ = seq2seq_data.generate_data(50, seq_len=7, vocab_size=5, seed=3)
    np.testing.assert_array_equal(np.stack(sources), np.stack(again))


def test_generate_data_variable_lengths_cover_the_range():
    sources, _ = seq2seq_data.generate_data(400, vocab_size=5, seed=0, length_range=(2, 6))
    assert {len(source) for source in sources} == {2, 3, 4, 5, 6}


def test_pad_sequences_pads_and_refuses_the_padding_id():
    padded = seq2seq_data.pad_sequences([[3, 4, 5], [6]])
    np.testing.assert_array_equal(padded, [[3, 4, 5], [6, PAD_ID, PAD_ID]])
    assert seq2seq_data.pad_sequences([[3]], length=4).shape == (1, 4)
    with pytest.raises(ValueError, match="padding id"):
        seq2seq_data.pad_sequences([[3, PAD_ID, 4]])
    # Raw token 0 becomes a real id after the shift, so it survives padding.
    assert seq2seq_data.to_ids([0])[0] != PAD_ID


def test_encode_lays_out_start_targets_and_end():
    batch = seq2seq_data.encode([np.array([0, 1, 2])], [np.array([2, 1, 0])], max_len=5)
    shift = NUM_SPECIAL_TOKENS
    np.testing.assert_array_equal(batch["source"][0], [shift, shift + 1, shift + 2, 0, 0])
    np.testing.assert_array_equal(
        batch["decoder_input"][0], [START_ID, shift + 2, shift + 1, shift, 0, 0]
    )
    np.testing.assert_array_equal(batch["target"][0], [shift + 2, shift + 1, shift, END_ID, 0, 0])
    assert seq2seq_data.from_ids(batch["target"][0]) == [2, 1, 0]


def test_prepare_batch_shuffles_full_batches_of_the_dataset():
    dataset = encoded_batch([4] * 10, max_len=4)
    dataset["row"] = np.arange(10)
    batches = list(seq2seq_data.prepare_batch(dataset, 3, np.random.default_rng(0)))
    assert [len(batch["row"]) for batch in batches] == [3, 3, 3]
    rows = np.concatenate([batch["row"] for batch in batches])
    assert len(set(rows)) == 9 and not np.array_equal(rows, np.arange(9))
    for batch in batches:
        np.testing.assert_array_equal(batch["source"], dataset["source"][batch["row"]])
    in_order = seq2seq_data.prepare_batch(dataset, 4, drop_remainder=False)
    assert [len(batch["row"]) for batch in in_order] == [4, 4, 2]


# Modules.


def test_module_shapes():
    batch = encoded_batch([5, 3], max_len=5)
    source = jnp.asarray(batch["source"])
    rngs = nnx.Rngs(0)
    encoded = Encoder(NUM_TOKENS, 8, 16, rngs=rngs)(source)
    assert encoded.outputs.shape == (2, 5, 16)
    assert [part.shape for part in encoded.carry] == [(2, 16), (2, 16)]
    assert encoded.mask.shape == (2, 5)

    attention = AdditiveAttention(16, 16, 8, rngs=rngs)
    projected = attention.project_keys(encoded.outputs)
    context, weights = attention(encoded.carry[1], encoded.outputs, projected, encoded.mask)
    assert projected.shape == (2, 5, 8) and context.shape == (2, 16) and weights.shape == (2, 5)

    decoder = Decoder(NUM_TOKENS, 8, 16, 8, use_attention=True, rngs=rngs)
    carry, logits, step_weights = decoder(
        encoded.carry,
        jnp.full((2,), START_ID),
        encoded,
        decoder.attention.project_keys(encoded.outputs),
    )
    assert logits.shape == (2, NUM_TOKENS) and step_weights.shape == (2, 5)
    assert [part.shape for part in carry] == [(2, 16), (2, 16)]

    logits, weights = tiny_model()(source, jnp.asarray(batch["decoder_input"]))
    assert logits.shape == (2, 6, NUM_TOKENS) and weights.shape == (2, 6, 5)
    logits, weights = tiny_model(use_attention=False)(source, jnp.asarray(batch["decoder_input"]))
    assert logits.shape == (2, 6, NUM_TOKENS) and weights is None


def test_encoder_final_state_ignores_padding():
    encoder = Encoder(NUM_TOKENS, 8, 16, rngs=nnx.Rngs(0))
    source = jnp.array([[4, 5, 6, PAD_ID, PAD_ID]])
    padded, unpadded = encoder(source), encoder(source[:, :3])
    for with_padding, without in zip(padded.carry, unpadded.carry, strict=True):
        np.testing.assert_allclose(with_padding, without, atol=1e-6)


def test_attention_weights_sum_to_one_over_real_positions_only():
    attention = AdditiveAttention(6, 4, 5, rngs=nnx.Rngs(0))
    keys = jax.random.normal(jax.random.key(1), (3, 7, 4))
    query = jax.random.normal(jax.random.key(2), (3, 6))
    mask = jnp.arange(7)[None, :] < jnp.array([[7], [4], [1]])
    context, weights = attention(query, keys, attention.project_keys(keys), mask)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-6)
    assert jnp.all(weights[~mask] == 0.0)
    # Whatever sits at the padded positions cannot leak into the context.
    noisy_keys = jnp.where(mask[..., None], keys, 100.0)
    noisy_context, _ = attention(query, noisy_keys, attention.project_keys(noisy_keys), mask)
    np.testing.assert_allclose(noisy_context, context, atol=1e-6)


def test_source_padding_does_not_change_the_output():
    model = tiny_model()
    source = jnp.array([[4, 5, 6]])
    decoder_input = jnp.array([[START_ID, 6, 5, 4]])
    logits, weights = model(source, decoder_input)
    padded_logits, padded_weights = model(jnp.pad(source, ((0, 0), (0, 3))), decoder_input)
    np.testing.assert_allclose(padded_logits, logits, atol=1e-5)
    np.testing.assert_allclose(padded_weights[..., :3], weights, atol=1e-6)
    assert jnp.all(padded_weights[..., 3:] == 0.0)


def test_loss_ignores_padded_targets():
    logits = jax.random.normal(jax.random.key(0), (2, 4, NUM_TOKENS))
    targets = jnp.array([[5, 6, END_ID, PAD_ID], [7, END_ID, PAD_ID, PAD_ID]])
    loss = seq2seq_train.masked_cross_entropy(logits, targets)
    log_probs = jax.nn.log_softmax(logits)
    real = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    expected = -np.mean([log_probs[b, t, targets[b, t]] for b, t in real])
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    scrambled = logits.at[0, 3].set(50.0).at[1, 2:].set(-50.0)
    np.testing.assert_allclose(seq2seq_train.masked_cross_entropy(scrambled, targets), loss)


def test_greedy_decoding_feeds_back_its_own_predictions():
    """Teacher-forcing a model on its own greedy outputs must reproduce them step for step."""
    model = tiny_model(seed=3)
    source = jnp.asarray(encoded_batch([5, 2, 4], max_len=5)["source"])
    predictions, weights = model.greedy_decode(source, 6)
    fed_back = jnp.concatenate([jnp.full((3, 1), START_ID), predictions[:, :-1]], axis=1)
    logits, forced_weights = model(source, fed_back.astype(source.dtype))
    np.testing.assert_array_equal(jnp.argmax(logits, axis=-1), predictions)
    np.testing.assert_allclose(forced_weights, weights, atol=1e-6)


# A short real training run, shared by the tests below.


def test_default_config_trains_the_lengths_people_type():
    """The app's example "3 1 4 1 5" (docs/app.md) must be a length the default model learns,
    and docs/seq2seq.md reports the default run's accuracy on a test set of lists of 10."""
    config = get_config()
    assert 1 <= config.min_seq_len <= 5 <= config.seq_len
    assert 10 in config.test_lengths


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Variable lengths 1 to 5, like the default config's 1 to 20, plus a fixed-length test set."""
    config = get_config()
    config.seq_len = 5
    config.min_seq_len = 1
    config.num_samples = 3000
    config.num_epochs = 4
    config.batch_size = 32
    config.hidden_size = 32
    config.embedding_size = 16
    config.attention_size = 32
    config.test_lengths = (5,)
    config.num_attention_examples = 2
    workdir = tmp_path_factory.mktemp("seq2seq")
    return config, workdir, seq2seq_train.train_and_evaluate(config, workdir)


def test_short_training_on_lengths_1_to_5_reaches_high_accuracy(trained):
    config, workdir, results = trained
    assert results["test_token_accuracy"] >= 0.97
    assert results["test_sequence_accuracy"] >= 0.85
    # The longest lists are the hardest; the fixed-length set shows they are learned too.
    assert results["test_by_length"]["5"]["token_accuracy"] >= 0.95
    history = results["history"]
    assert len(history["train_loss"]) == config.num_epochs
    assert history["train_loss"][-1] < history["train_loss"][0]
    saved = json.loads((workdir / "seq2seq_results.json").read_text())
    assert saved["test_token_accuracy"] == results["test_token_accuracy"]
    assert (workdir / "seq2seq_loss.png").stat().st_size > 0
    assert (workdir / "seq2seq_attention.png").stat().st_size > 0


def test_greedy_matches_teacher_forced_argmax_when_the_model_is_perfect(trained):
    config, workdir, results = trained
    model = seq2seq_train.create_model(config)
    optimizer = seq2seq_train.create_optimizer(model, config)
    checkpointer = Checkpointer(workdir / "seq2seq_model", best_metric="val_token_accuracy")
    best_epoch, state = checkpointer.restore_best(seq2seq_train.checkpoint_like(model, optimizer))
    checkpointer.close()
    assert best_epoch == results["best_epoch"]
    seq2seq_train.load_checkpoint(model, optimizer, state)
    sources = [np.array(tokens) for tokens in ([3, 1, 4, 1, 5], [9, 2, 6, 5, 3], [0, 0, 7, 7, 0])]
    batch = seq2seq_data.encode(sources, [source[::-1] for source in sources], max_len=5)
    logits, _ = model(jnp.asarray(batch["source"]), jnp.asarray(batch["decoder_input"]))
    forced = np.asarray(jnp.argmax(logits, axis=-1))
    np.testing.assert_array_equal(forced, batch["target"])  # the case is solved perfectly
    greedy, _ = model.greedy_decode(jnp.asarray(batch["source"]), 6)
    np.testing.assert_array_equal(greedy, forced)


def test_rerun_resumes_instead_of_retraining(trained):
    config, workdir, results = trained
    again = seq2seq_train.train_and_evaluate(config, workdir)
    assert again["history"] == results["history"]
    assert again["test_token_accuracy"] == results["test_token_accuracy"]


def test_reverser_reverses_and_validates_input(trained):
    _, workdir, _ = trained
    reverser = load_reverser(workdir)
    assert (reverser.vocab_size, reverser.min_len, reverser.max_len) == (VOCAB, 1, 5)
    output, weights = reverser.reverse([3, 1, 4, 1, 5])
    assert output == [5, 1, 4, 1, 3]
    assert weights.shape == (5, 5)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    # Reversal reads the input back to front, so each step attends most to its mirror.
    np.testing.assert_array_equal(weights.argmax(axis=1), [4, 3, 2, 1, 0])
    # A shorter list stops at its own length: the END comes after its last token, not at 5.
    output, weights = reverser.reverse([7, 2])
    assert output == [2, 7]
    assert weights.shape == (2, 2)
    for bad in ([3, 1, 4, 1, 10], [3, 1, 4, 1, -1], [1, 2, 3, 4, 5, 6], []):
        with pytest.raises(UserError):
            reverser.reverse(bad)


def test_load_reverser_without_a_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="No trained seq2seq model"):
        load_reverser(tmp_path)


def test_invalid_config_is_a_user_error(tmp_path):
    config = get_config()
    config.teacher_forcing_ratio = 1.5
    with pytest.raises(UserError, match="teacher_forcing_ratio"):
        seq2seq_train.train_and_evaluate(config, tmp_path)


# The ablation script's bookkeeping (its training is train_and_evaluate, tested above).


def fake_results(config, token_accuracy: float) -> dict:
    return {
        "seq_len": config.seq_len,
        "test_token_accuracy": token_accuracy,
        "test_sequence_accuracy": token_accuracy / 2,
        "test_by_length": {
            str(length): {"token_accuracy": token_accuracy / 4, "sequence_accuracy": 0.0}
            for length in config.test_lengths
        },
        "train_time_s": 1.0,
        "best_epoch": 1,
        "epochs": 1,
        "params": 10,
        "config": json.loads(json.dumps(config.to_dict())),
    }


def fake_cells(base) -> dict[tuple[str, int], dict]:
    """Every ablation cell with made-up accuracies that tell the cells apart."""
    cells = {}
    for variant, use_attention in ablation.VARIANTS.items():
        for length in ablation.TRAIN_LENGTHS:
            config = ablation.cell_config(base, use_attention, length)
            accuracy = (0.8 if use_attention else 0.4) + length / 1000
            cells[variant, length] = fake_results(config, accuracy)
    return cells


def test_ablation_table_puts_each_cell_in_its_row():
    base = get_config()
    table = ablation.ablation_table(base, fake_cells(base))
    assert "| 40 | 40 | 0.8400 | 0.4200 | 0.4400 | 0.2200 |" in table
    assert "| 10 | 20 | 0.2025 | 0.0000 | 0.1025 | 0.0000 |" in table


def test_published_ablation_table_describes_the_cells_the_script_runs():
    """The committed table was measured with fixed-length cells and this budget; a change to
    the default config that reaches the cells must come with a rerun of the ablation."""
    base = get_config()
    cells = fake_cells(base)
    for (_, length), results in cells.items():
        assert (results["config"]["seq_len"], results["config"]["min_seq_len"]) == (length, 0)
    budget = ablation.ablation_table(base, cells).splitlines()[2]
    assert budget.startswith("Budget per cell:")
    published = Path(__file__).parents[1] / "docs/results/seq2seq/seq2seq_ablation.md"
    assert budget in published.read_text().splitlines()


def test_ablation_reuses_finished_cells_and_refuses_stale_ones(tmp_path):
    config = ablation.cell_config(get_config(), True, 10)
    results = fake_results(config, 0.9)
    (tmp_path / "seq2seq_results.json").write_text(json.dumps(results))
    assert ablation.run_cell(config, tmp_path) == results
    config.num_epochs += 1
    with pytest.raises(UserError, match="different config"):
        ablation.run_cell(config, tmp_path)
