"""Trains and evaluates the reversal seq2seq model; `train_and_evaluate` is the entry point.

Writes into the workdir: `seq2seq_model/` (latest and best checkpoints; re-running resumes),
`seq2seq_results.json`, `seq2seq_loss.png` and, with attention, `seq2seq_attention.png`.
Held-out metrics always decode greedily, never teacher-forced, since that is how the model
is used: token accuracy over the reversed list's tokens (END and padding excluded, so a
fixed-length run gets no free points for stopping) and whole-sequence exact match (every
token and the END at the right step).
"""

import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import ml_collections
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from jax_models.complexity import count_params
from jax_models.errors import UserError
from jax_models.seq2seq import END_ID, NUM_SPECIAL_TOKENS, PAD_ID, Seq2Seq
from trainers import seq2seq_data
from trainers.checkpoint import Checkpointer
from trainers.divergence import check_divergence
from trainers.run_files import (
    RunFiles,
    claimed_run,
    environment,
    write_json,
    writing,
)
from trainers.run_identity import SameRun
from trainers.settings import check_seq2seq_settings

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

Dataset = dict[str, np.ndarray]
HISTORY_KEYS = (
    "train_loss",
    "val_loss",
    "val_token_accuracy",
    "val_sequence_accuracy",
    "epoch_time_s",
)


def create_model(config: ml_collections.ConfigDict) -> Seq2Seq:
    return Seq2Seq(
        vocab_size=config.vocab_size,
        embedding_size=config.embedding_size,
        hidden_size=config.hidden_size,
        attention_size=config.attention_size,
        use_attention=config.use_attention,
        rngs=nnx.Rngs(config.seed),
    )


def create_optimizer(model: Seq2Seq, config: ml_collections.ConfigDict) -> nnx.Optimizer:
    """Adam behind global-norm clipping, which keeps the LSTMs' rare gradient spikes from
    undoing a converged model (unclipped, the default run lost half its accuracy in epoch 3)."""
    tx = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate)
    )
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


def checkpoint_state(
    model: Seq2Seq, optimizer: nnx.Optimizer, epoch: int, history: dict[str, list[float]]
) -> dict:
    """The saved pytree. History rides along so a resumed run keeps its curves; its arrays
    have one entry per finished epoch, so a step's layout follows from the step alone."""
    return {
        "model": nnx.state(model),
        "optimizer": nnx.state(optimizer),
        "epoch": epoch,
        "history": {key: np.asarray(history[key], np.float64) for key in HISTORY_KEYS},
    }


def checkpoint_like(model: Seq2Seq, optimizer: nnx.Optimizer) -> Callable[[int], dict]:
    """The layout of the pytree saved at each step, to restore into."""
    return lambda step: checkpoint_state(
        model, optimizer, step, {key: [0.0] * step for key in HISTORY_KEYS}
    )


def load_checkpoint(
    model: Seq2Seq, optimizer: nnx.Optimizer, restored: dict
) -> dict[str, list[float]]:
    """Puts a restored checkpoint into model and optimizer in place; returns its history."""
    nnx.update(model, restored["model"])
    nnx.update(optimizer, restored["optimizer"])
    return {key: [float(x) for x in restored["history"][key]] for key in HISTORY_KEYS}


def make_datasets(config: ml_collections.ConfigDict) -> dict[str, Dataset]:
    """train/validation split of one draw, a fresh test draw, and one test set per extra length.

    The test set is never used for checkpoint selection, so its numbers are not optimistic.
    """
    length_range = (config.min_seq_len, config.seq_len) if config.min_seq_len else None
    num_eval = int(config.num_samples * config.eval_fraction)

    def draw(num_samples: int, seq_len: int, seed: int, lengths: tuple | None) -> Dataset:
        sources, targets = seq2seq_data.generate_data(
            num_samples, seq_len, config.vocab_size, seed, length_range=lengths
        )
        return seq2seq_data.encode(sources, targets, max_len=seq_len)

    data = draw(config.num_samples, config.seq_len, config.seed, length_range)
    datasets = {
        "validation": {name: array[:num_eval] for name, array in data.items()},
        "train": {name: array[num_eval:] for name, array in data.items()},
        "test": draw(num_eval, config.seq_len, config.seed + 1, length_range),
    }
    for length in config.test_lengths:
        datasets[f"test_length_{length}"] = draw(num_eval, length, config.seed + 1, None)
    return datasets


def masked_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean cross-entropy over the non-padding target positions only."""
    mask = targets != PAD_ID
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1)


@nnx.jit
def train_step(
    model: Seq2Seq,
    optimizer: nnx.Optimizer,
    batch: dict[str, jax.Array],
    key: jax.Array,
    teacher_forcing_ratio: float,
) -> jax.Array:
    """One Adam step; `key` draws which decoder steps see the truth (ratio) or a prediction."""
    teacher_forcing = jax.random.bernoulli(key, teacher_forcing_ratio, batch["decoder_input"].shape)

    def loss_fn(model: Seq2Seq) -> jax.Array:
        logits, _ = model(batch["source"], batch["decoder_input"], teacher_forcing)
        return masked_cross_entropy(logits, batch["target"])

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def eval_step(model: Seq2Seq, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Sums for one batch: teacher-forced loss, and greedy token and exact-match counts."""
    targets = batch["target"]
    logits, _ = model(batch["source"], batch["decoder_input"])
    predictions, _ = model.greedy_decode(batch["source"], targets.shape[1])
    real = targets != PAD_ID
    tokens = real & (targets != END_ID)
    correct = predictions == targets
    num_real = jnp.sum(real)
    return {
        "loss_sum": masked_cross_entropy(logits, targets) * num_real,
        "real_positions": num_real,
        "correct_tokens": jnp.sum(correct & tokens),
        "tokens": jnp.sum(tokens),
        "exact_sequences": jnp.sum(jnp.all(correct | ~real, axis=1)),
        "sequences": jnp.asarray(targets.shape[0]),
    }


def evaluate(model: Seq2Seq, dataset: Dataset, batch_size: int) -> dict[str, float]:
    """Loss (teacher-forced), token_accuracy and sequence_accuracy (greedy) over `dataset`."""
    totals: dict[str, float] = {}
    for batch in seq2seq_data.prepare_batch(dataset, batch_size, drop_remainder=False):
        for name, value in eval_step(model, batch).items():
            totals[name] = totals.get(name, 0.0) + float(value)
    return {
        "loss": totals["loss_sum"] / totals["real_positions"],
        "token_accuracy": totals["correct_tokens"] / totals["tokens"],
        "sequence_accuracy": totals["exact_sequences"] / totals["sequences"],
    }


def train_epoch(
    model: Seq2Seq,
    optimizer: nnx.Optimizer,
    train_data: dict[str, jax.Array],
    config: ml_collections.ConfigDict,
    epoch: int,
) -> float:
    """One pass over the shuffled training set; returns the mean training loss."""
    steps_per_epoch = len(train_data["source"]) // config.batch_size
    # Shuffling and teacher-forcing draws depend only on (seed, epoch, step), so a resumed
    # run replays exactly what an uninterrupted one would have done.
    shuffle_rng = np.random.default_rng([config.seed, epoch])
    base_key = jax.random.fold_in(jax.random.key(config.seed), epoch)
    losses = []
    batches = seq2seq_data.prepare_batch(train_data, config.batch_size, shuffle_rng)
    with tqdm(
        batches, total=steps_per_epoch, desc=f"epoch {epoch}/{config.num_epochs}", leave=False
    ) as progress:
        for step, batch in enumerate(progress):
            key = jax.random.fold_in(base_key, step)
            losses.append(train_step(model, optimizer, batch, key, config.teacher_forcing_ratio))
            if step % 10 == 0:
                progress.set_postfix(loss=f"{float(jnp.mean(jnp.stack(losses))):.4f}")
    return float(jnp.mean(jnp.stack(losses)))


def plot_losses(history: dict[str, list[float]], path: Path) -> None:
    epochs = range(1, len(history["train_loss"]) + 1)
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(epochs, history["train_loss"], marker="o", label="train (teacher forcing mix)")
    axis.plot(epochs, history["val_loss"], marker="o", label="validation (teacher forced)")
    axis.set_yscale("log")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("Epoch")
    axis.set_ylabel("Cross-entropy (padding masked)")
    axis.set_title("Sequence reversal: loss")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_attention(model: Seq2Seq, dataset: Dataset, num_examples: int, path: Path) -> None:
    """Greedy attention weights of a few held-out lists: output step (rows) against input
    position (columns), labelled with tokens; reversal should light up the anti-diagonal."""
    sources = dataset["source"][:num_examples]
    predictions, weights = model.greedy_decode(jnp.asarray(sources), dataset["target"].shape[1])
    figure, axes = plt.subplots(
        1, num_examples, figsize=(3.6 * num_examples, 3.8), squeeze=False, layout="constrained"
    )
    for axis, source, predicted, example_weights in zip(
        axes[0], sources, np.asarray(predictions), np.asarray(weights), strict=True
    ):
        inputs = seq2seq_data.from_ids(source)
        outputs = seq2seq_data.from_ids(predicted)
        # Rows: every output token, plus the END step when the model stopped on its own.
        num_rows = len(outputs) + int(len(outputs) < len(predicted))
        row_labels = [str(token) for token in outputs] + ["<end>"] * (num_rows - len(outputs))
        image = axis.imshow(
            example_weights[:num_rows, : len(inputs)], cmap="viridis", vmin=0.0, vmax=1.0
        )
        axis.set_xticks(range(len(inputs)), [str(token) for token in inputs])
        axis.set_yticks(range(num_rows), row_labels)
        axis.set_xlabel("Input token")
        axis.set_ylabel("Output token")
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="Attention weight")
    figure.suptitle("Additive attention on held-out lists (greedy decoding)")
    figure.savefig(path, dpi=120)
    plt.close(figure)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains (resuming from the latest checkpoint), evaluates the best one, writes results.

    A run already finished in `workdir` returns its results file without training. The workdir
    is locked for the whole run, and a resume must be the same run (`trainers.run_identity`).
    """
    check_seq2seq_settings(config)
    with claimed_run(config, workdir) as (files, finished):
        if finished is not None:
            return finished
        checkpointer = Checkpointer(files.checkpoints, best_metric="val_token_accuracy")
        try:
            return train_run(config, files, checkpointer, str(workdir))
        finally:
            checkpointer.close()


def train_run(
    config: ml_collections.ConfigDict, files: RunFiles, checkpointer: Checkpointer, workdir: str
) -> dict:
    """The epochs left to train, each checked for divergence and checkpointed, then results."""
    datasets = make_datasets(config)
    train_data = {name: jnp.asarray(array) for name, array in datasets["train"].items()}
    model = create_model(config)
    optimizer = create_optimizer(model, config)
    history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    same_run = SameRun(config, workdir)
    resumed = checkpointer.restore_latest(checkpoint_like(model, optimizer), same_run)
    if resumed is not None:
        latest, state, _ = resumed
        history = load_checkpoint(model, optimizer, state)
        tqdm.write(f"Resuming from epoch {latest} in {checkpointer.directory}")

    for epoch in range(len(history["train_loss"]) + 1, config.num_epochs + 1):
        start = time.perf_counter()
        train_loss = train_epoch(model, optimizer, train_data, config, epoch)
        validation = evaluate(model, datasets["validation"], config.eval_batch_size)
        history["train_loss"].append(train_loss)
        history["val_loss"].append(validation["loss"])
        history["val_token_accuracy"].append(validation["token_accuracy"])
        history["val_sequence_accuracy"].append(validation["sequence_accuracy"])
        history["epoch_time_s"].append(time.perf_counter() - start)
        check_divergence(
            config,
            epoch,
            train_loss,
            validation["loss"],
            num_classes=config.vocab_size + NUM_SPECIAL_TOKENS,  # the logits' width
            checkpointer=checkpointer,
        )
        checkpointer.save(
            epoch,
            checkpoint_state(model, optimizer, epoch, history),
            {"val_token_accuracy": validation["token_accuracy"], "val_loss": validation["loss"]},
            meta={"config": config.to_dict(), "config_changes": same_run.changes},
        )
        tqdm.write(
            f"epoch {epoch}/{config.num_epochs}: train_loss {train_loss:.4f}  "
            f"val_loss {validation['loss']:.4f}  "
            f"val_token_acc {validation['token_accuracy']:.4f}  "
            f"val_seq_acc {validation['sequence_accuracy']:.4f}  "
            f"({history['epoch_time_s'][-1]:.1f}s)"
        )

    best = checkpointer.restore_best(checkpoint_like(model, optimizer))
    if best is None:
        raise UserError("num_epochs is 0, so there is no trained model to evaluate.")
    best_epoch, state = best
    load_checkpoint(model, optimizer, state)
    test = evaluate(model, datasets["test"], config.eval_batch_size)
    by_length = {
        str(length): evaluate(model, datasets[f"test_length_{length}"], config.eval_batch_size)
        for length in config.test_lengths
    }
    results = {
        "task": "seq2seq",
        "use_attention": config.use_attention,
        "seq_len": config.seq_len,
        "test_loss": test["loss"],
        "test_token_accuracy": test["token_accuracy"],
        "test_sequence_accuracy": test["sequence_accuracy"],
        "test_by_length": by_length,
        "history": history,
        "epochs": len(history["train_loss"]),
        "best_epoch": best_epoch,
        "train_time_s": sum(history["epoch_time_s"]),
        "params": count_params(model),
        "config": config.to_dict(),
        "config_changes": same_run.changes,
        "environment": environment(),
    }
    write_json(files.results, results)
    with writing(files.curves):
        plot_losses(history, files.curves)
    if files.attention is not None:
        with writing(files.attention):
            plot_attention(model, datasets["test"], config.num_attention_examples, files.attention)
    return results
