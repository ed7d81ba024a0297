"""Trains and evaluates one image classifier of the study; the library's one entry point.

The data lives on the device as uint8 for the whole run: each step gathers its batch by
index inside jit, augments it when the recipe asks (`trainers.augment`), scales it by 1/255
and shards it over the `data` axis of a mesh of every device, so the same code runs on one
CPU, several devices or several hosts. The optimizer, schedule and loss come from the recipe
keys of the config (`trainers.recipes`); curves go to TensorBoard (`trainers.metric_writer`).
"""

import math
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

import jax_models
from jax_models.errors import UserError
from trainers import metric_writer, recipes, xla_options
from trainers.augment import augment
from trainers.checkpoint import Checkpointer, checkpoint_dir
from trainers.data import DatasetInfo, Split, load_dataset
from trainers.divergence import check_divergence
from trainers.metrics import EvalMetrics, TrainMetrics, classification_report
from trainers.plots import plot_curves
from trainers.run_files import (
    RunFiles,
    claimed_run,
    environment,
    run_prefix,
    write_json,
    writing,
)
from trainers.run_identity import SameRun
from trainers.settings import check_classification_settings, parse_steps_per_call

PyTree = Any
HISTORY_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_time_s")


def make_mesh() -> Mesh:
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def put_replicated(array: np.ndarray, mesh: Mesh) -> jax.Array:
    """Places a host array on every device (works across hosts too)."""
    return jax.make_array_from_callback(
        array.shape, NamedSharding(mesh, P()), lambda index: array[index]
    )


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Commits every array of `tree` to all devices.

    A jitted step keys its compilation cache on its inputs' shardings: fresh arrays and the
    step's own outputs must carry the same one, or the second step compiles all over again.
    """
    return jax.device_put(tree, NamedSharding(mesh, P()))


def replicated_optimizer(
    model: nnx.Module, transform: optax.GradientTransformation, mesh: Mesh
) -> nnx.Optimizer:
    """`transform` on `model`'s Params, model and optimizer state replicated over `mesh`."""
    optimizer = nnx.Optimizer(model, transform, wrt=nnx.Param)
    nnx.update((model, optimizer), replicate(nnx.state((model, optimizer)), mesh))
    return optimizer


def replicated_adam(model: nnx.Module, learning_rate: float, mesh: Mesh) -> nnx.Optimizer:
    """The study's Adam, for the benchmarks and tests that time or check the bare step."""
    return replicated_optimizer(model, optax.adam(learning_rate), mesh)


def use_compilation_cache(directory: str) -> None:
    """Keeps compiled steps on disk, so a rerun, a resume or `scripts.evaluate` loads them
    instead of compiling again (seconds to a minute per network on a small CPU).

    Must run before the process's first compilation; an empty `directory` leaves JAX's own
    setting (off unless JAX_COMPILATION_CACHE_DIR is set).
    """
    if directory:
        jax.config.update("jax_compilation_cache_dir", str(Path(directory).expanduser()))


def to_host(value: jax.Array) -> np.ndarray:
    """Reads a replicated result, which every process holds a full copy of."""
    return np.asarray(value.addressable_data(0))


def split_train_validation(
    train: Split, fraction: float, max_examples: int, seed: int
) -> tuple[Split, Split]:
    """Holds out a seeded random `fraction` of the training split for validation."""
    if not 0.0 < fraction < 1.0:
        raise UserError(
            f"validation_fraction must lie strictly between 0 and 1, got {fraction}; "
            "set --config.validation_fraction=0.1 for example."
        )
    order = np.random.default_rng(seed).permutation(len(train))
    num_validation = max(1, round(len(train) * fraction))
    train_index, validation_index = order[num_validation:], order[:num_validation]
    if max_examples > 0:
        train_index = train_index[:max_examples]
    return (
        Split(train.images[train_index], train.labels[train_index]),
        Split(train.images[validation_index], train.labels[validation_index]),
    )


def batch_of(
    images: jax.Array,
    labels: jax.Array,
    index: jax.Array,
    mesh: Mesh,
    transform: Callable[[jax.Array], jax.Array] | None = None,
):
    """Gathers a batch on device, passes the uint8 images through `transform` (augmentation,
    training only), scales them to [0, 1] and shards the batch over the data axis."""
    sharding = NamedSharding(mesh, P("data"))
    batch = images[index]
    if transform is not None:
        batch = transform(batch)
    batch = batch.astype(jnp.float32) / 255.0
    batch = jax.lax.with_sharding_constraint(batch, sharding)
    return batch, jax.lax.with_sharding_constraint(labels[index], sharding)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example categorical cross-entropy on one-hot labels, smoothed towards the uniform
    distribution by `label_smoothing` (Szegedy et al., 2016) when the recipe asks."""
    targets = jax.nn.one_hot(labels, logits.shape[-1])
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def low_precision_value_and_grad(
    model: nnx.Module, x: jax.Array, y: jax.Array, dtype: jnp.dtype, label_smoothing: float = 0.0
) -> tuple[tuple[jax.Array, jax.Array], nnx.State]:
    """Mean loss, float32 logits and float32 gradients of a forward pass computed in `dtype`.

    Flax's mixed precision: a copy of the model whose layers compute in `dtype` (their `dtype`
    attribute) while their parameters and BatchNorm statistics stay float32, so the gradients
    come back float32 for Adam and the statistics are averaged in float32.
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(params: nnx.State) -> tuple[jax.Array, tuple[jax.Array, nnx.State]]:
        # Fresh Variables for the statistics, created in this trace so BatchNorm may update them.
        low = nnx.merge(graphdef, params, jax.tree.map(lambda value: value, rest))
        for _, module in nnx.iter_modules(low):
            if isinstance(module, nnx.Conv | nnx.Linear | nnx.BatchNorm):
                module.dtype = dtype
        logits = low(x.astype(dtype)).astype(jnp.float32)
        loss = cross_entropy(logits, y, label_smoothing).mean()
        return loss, (logits, nnx.state(low, nnx.Not(nnx.Param)))

    (loss, (logits, new_rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    nnx.update(model, new_rest)
    return (loss, logits), grads


def one_train_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    metrics: TrainMetrics,
    images: jax.Array,
    labels: jax.Array,
    order: jax.Array,
    step: jax.Array,
    *,
    batch_size: int,
    mesh: Mesh,
    compute_dtype: str,
    recipe: recipes.StepRecipe,
    augment_key: jax.Array | None,
    global_step: jax.Array | None,
) -> TrainMetrics:
    """Trains on batch `step` of the epoch's `order`, gathered on the device; `train_step`
    runs it once or in a loop. `global_step` numbers the batch across epochs: its augmentation
    draws from `augment_key` folded with it."""
    index = jax.lax.dynamic_slice_in_dim(order, step * batch_size, batch_size)
    transform = None
    if recipe.augmentation.active:
        key = jax.random.fold_in(augment_key, global_step)
        transform = partial(augment, key=key, augmentation=recipe.augmentation)
    x, y = batch_of(images, labels, index, mesh, transform)
    smoothing = recipe.label_smoothing

    def loss_fn(model: nnx.Module) -> tuple[jax.Array, jax.Array]:
        logits = model(x)
        return cross_entropy(logits, y, smoothing).mean(), logits

    if compute_dtype == "float32":
        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    else:
        dtype = jnp.dtype(compute_dtype)
        (loss, logits), grads = low_precision_value_and_grad(model, x, y, dtype, smoothing)
    optimizer.update(model, grads)
    return metrics.merge(TrainMetrics.single_from_model_output(loss=loss, logits=logits, labels=y))


def unrolls_steps() -> bool:
    """Whether a call of several steps unrolls them instead of looping (on CPU).

    XLA:CPU rewrites convolutions into the form its fast kernels take in the entry computation
    only: inside a loop body the backward convolutions run a slower, differently rounded
    path. Unrolled, they are top-level as in a single step, at the price of compiling the step
    once per step of the call. Elsewhere the loop compiles the step once.
    """
    return jax.default_backend() == "cpu"


# The hot loops' jits run in tree mode (`graph=False`): the modules cross the boundary as plain
# pytrees instead of through graph mode's Python traversal of every Variable on every call
# (1.2 -> 0.2 ms per call for LeNet-5, 25 -> 1.8 ms for ResNet-18, docs/performance.md), with
# the same program and results. Tree mode needs modules that share no Variable, as the study's
# don't. It returns a dropout stream's unchanged RNG key as an update, so XLA cannot reuse that
# donated scalar: JAX's warning for it alone is silenced, any other unusable donation still warns.
warnings.filterwarnings(
    "ignore", message=r"Some donated buffers were not usable: (key<\w+>\[\](, )?)+\.\n"
)


TRAIN_STEP_STATIC = ("batch_size", "mesh", "compute_dtype", "num_steps", "recipe")
# Donating the state lets XLA write the updated weights, Adam moments and metrics over the old
# ones instead of holding both (ResNet-18, batch 32: 454 MB -> 391 MB per step, same speed).
TRAIN_STEP_DONATED = ("model", "optimizer", "metrics")


@partial(
    xla_options.jit,
    static_argnames=TRAIN_STEP_STATIC,
    donate_argnames=TRAIN_STEP_DONATED,
    graph=False,
)
def train_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    metrics: TrainMetrics,
    images: jax.Array,
    labels: jax.Array,
    order: jax.Array,
    step: jax.Array,
    *,
    batch_size: int,
    mesh: Mesh,
    compute_dtype: str = "float32",
    num_steps: int = 1,
    recipe: recipes.StepRecipe = recipes.STUDY_STEP,
    augment_key: jax.Array | None = None,
    global_step: jax.Array | None = None,
) -> TrainMetrics:
    """Trains on batches `step`, `step + 1`, ... `step + num_steps - 1` of the epoch's `order`
    in one dispatch (`config.steps_per_call`).

    One step is traced as it is: the program of one step per call. Several are a `fori_loop`
    over that same step with a static trip count, which XLA runs without reading a predicate
    back from the device each iteration; on CPU it is unrolled (`unrolls_steps`). With
    augmentation, `augment_key` and the `global_step` of batch `step` are needed; without,
    the study's program takes neither.
    """
    if recipe.augmentation.active and (augment_key is None or global_step is None):
        raise ValueError("an augmenting recipe needs augment_key and global_step")
    one_step = partial(
        one_train_step,
        images=images,
        labels=labels,
        order=order,
        batch_size=batch_size,
        mesh=mesh,
        compute_dtype=compute_dtype,
        recipe=recipe,
        augment_key=augment_key,
    )
    if num_steps == 1:
        return one_step(model, optimizer, metrics, step=step, global_step=global_step)
    graphdef, state = nnx.split((model, optimizer))

    def body(i: jax.Array, carry: tuple[nnx.State, TrainMetrics]):
        state, metrics = carry
        model, optimizer = nnx.merge(graphdef, state)
        following = None if global_step is None else global_step + i
        metrics = one_step(model, optimizer, metrics, step=step + i, global_step=following)
        return nnx.state((model, optimizer)), metrics

    state, metrics = jax.lax.fori_loop(0, num_steps, body, (state, metrics), unroll=unrolls_steps())
    nnx.update((model, optimizer), state)
    return metrics


@partial(xla_options.jit, static_argnames=("batch_size", "mesh"), graph=False)
def eval_step(
    model: nnx.Module,
    images: jax.Array,
    labels: jax.Array,
    start: jax.Array,
    *,
    batch_size: int,
    mesh: Mesh,
) -> EvalMetrics:
    index = start + jnp.arange(batch_size)
    valid = index < labels.shape[0]
    x, y = batch_of(images, labels, jnp.where(valid, index, 0), mesh)
    logits = model(x)
    return EvalMetrics.single_from_model_output(
        loss=cross_entropy(logits, y), logits=logits, labels=y, mask=valid
    )


@partial(jax.jit, static_argnames="size")
def shuffled_order(seed: int, epoch: int, size: int) -> jax.Array:
    """The epoch's example order: a pure function of seed and epoch, so resuming replays it."""
    return jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch), size)


def round_to_devices(batch_size: int) -> int:
    return math.ceil(batch_size / jax.device_count()) * jax.device_count()


def evaluate(
    model: nnx.Module,
    images: jax.Array,
    labels: jax.Array,
    *,
    batch_size: int,
    mesh: Mesh,
) -> dict[str, np.ndarray]:
    """Loss, accuracy and confusion matrix over a whole split, padding the last batch."""
    model.eval()
    batch_size = round_to_devices(min(batch_size, labels.shape[0]))
    metrics = None
    for start in range(0, labels.shape[0], batch_size):
        batch = eval_step(model, images, labels, jnp.int32(start), batch_size=batch_size, mesh=mesh)
        metrics = batch if metrics is None else metrics.merge(batch)
    return {name: to_host(value) for name, value in metrics.compute().items()}


class Run:
    """Model, optimizer and on-device data of one (model, dataset) run, built from a config,
    and the writer of its live curves (`train_run` opens a real one)."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: Path):
        check_classification_settings(config)  # before minutes of data loading
        use_compilation_cache(config.get("compilation_cache_dir", ""))
        self.config = config
        self.prefix = run_prefix(config)
        self.mesh = make_mesh()
        loaded = load_dataset(
            config.dataset,
            config.data_dir,
            config.data_source,
            config.tfds_data_dir,
            config.get("data_mirror", ""),
        )
        self.info, splits, self.data = loaded.info, loaded.splits, loaded.provenance
        train, validation = split_train_validation(
            splits["train"], config.validation_fraction, config.max_train_examples, config.seed
        )
        self.num_train = len(train)
        check_batch_fits(config, self.num_train)
        self.steps_per_epoch = self.num_train // config.batch_size
        self.splits = {
            name: (put_replicated(s.images, self.mesh), put_replicated(s.labels, self.mesh))
            for name, s in (("train", train), ("val", validation), ("test", splits["test"]))
        }
        self.model = jax_models.create(
            config.model,
            num_classes=self.info.num_classes,
            input_shape=self.info.image_shape,
            seed=config.seed,
        )
        total_steps = self.steps_per_epoch * config.num_epochs
        self.learning_rate = recipes.learning_rate(config, total_steps)
        self.optimizer = replicated_optimizer(
            self.model, recipes.optimizer(config, total_steps), self.mesh
        )
        self.step_recipe = recipes.StepRecipe.from_config(config, config.dataset)
        self.augment_key = None
        if self.step_recipe.augmentation.active:
            self.augment_key = replicate(recipes.augment_key(config.seed), self.mesh)
        self.checkpointer = Checkpointer(checkpoint_dir(workdir, self.prefix))
        self.writer: metric_writer.ScalarWriter = metric_writer.NullWriter()

    def state(self) -> dict:
        return {"model": nnx.state(self.model), "optimizer": nnx.state(self.optimizer)}

    def resume(self, check: Callable[[int, dict], None]) -> tuple[int, dict] | None:
        """Loads the newest intact checkpoint that passes `check` (which sees its metadata
        first): its (epoch, meta), or None before the first."""
        latest = self.checkpointer.restore_latest(lambda _: self.state(), check)
        if latest is None:
            return None
        epoch, state, meta = latest
        self._load(state)
        return epoch, meta

    def restore_best(self) -> int | None:
        """Loads the intact checkpoint best on validation: its epoch, or None before the first."""
        best = self.checkpointer.restore_best(lambda _: self.state())
        if best is None:
            return None
        epoch, state = best
        self._load(state)
        return epoch

    def _load(self, state: dict) -> None:
        nnx.update(self.model, state["model"])
        nnx.update(self.optimizer, state["optimizer"])

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of update `step` (counted from 0 over the whole run)."""
        if callable(self.learning_rate):
            return float(self.learning_rate(step))
        return self.learning_rate

    def evaluate(self, split: str) -> dict[str, np.ndarray]:
        images, labels = self.splits[split]
        return evaluate(
            self.model,
            images,
            labels,
            batch_size=self.config.eval_batch_size,
            mesh=self.mesh,
        )


def check_batch_fits(config: ml_collections.ConfigDict, num_train: int) -> None:
    if config.batch_size > num_train:
        raise UserError(
            f"batch_size {config.batch_size} is larger than the {num_train} training examples "
            f"of {config.dataset} left after the validation split; lower --config.batch_size."
        )


# What `steps_per_call = "auto"` runs per dispatch on a GPU or TPU; see resolve_steps_per_call.
ACCELERATOR_STEPS_PER_CALL = 8


def resolve_steps_per_call(config: ml_collections.ConfigDict) -> int:
    """The training steps one jitted call runs: `config.steps_per_call`, with `auto` resolved.

    `auto` is 1 on CPU: there a step's compute dwarfs its dispatch, so several steps per call
    gain little and cost their compilation several times over (unrolled, `unrolls_steps`);
    one step per call is exactly the program of earlier versions. On an accelerator a step
    of LeNet-5 or ResNet-20 can take less time than Python takes to dispatch it through
    `nnx.jit`, and `auto` is `ACCELERATOR_STEPS_PER_CALL`: a starting point rather than a
    measured optimum, eight times fewer dispatches while the progress bar and the running
    metrics still move every few steps.
    """
    value = parse_steps_per_call(config.get("steps_per_call", "auto"))
    if value == "auto":
        return 1 if jax.default_backend() == "cpu" else ACCELERATOR_STEPS_PER_CALL
    return value


def step_groups(steps: int, per_call: int) -> list[int]:
    """The steps of each call of an epoch: as many calls of `per_call` as fit, then one call of
    the rest. The rest is a second compiled loop (one more compilation per run, kept by the
    compilation cache) rather than single steps: one dispatch, with a static trip count."""
    calls = [per_call] * (steps // per_call)
    return calls + [steps % per_call] if steps % per_call else calls


def first_calls_steps(steps: int, per_call: int) -> int:
    """Steps of the calls that throughput leaves out: the first call of each step count, which
    compiles (or loads) its program in the first epoch."""
    return sum(set(step_groups(steps, per_call)))


def _metric_sums(metrics: TrainMetrics) -> np.ndarray:
    """Loss and accuracy totals and counts so far, to average the steps since the last log."""
    parts = (metrics.loss.total, metrics.loss.count, metrics.accuracy.total, metrics.accuracy.count)
    return np.array([float(to_host(part)) for part in parts])


def train_epoch(run: Run, epoch: int) -> tuple[dict[str, float], float, float]:
    """One shuffled pass; returns train metrics, seconds of training and seconds of the first
    call of each step count (`first_calls_steps`), which compile in the first epoch.

    The progress bar advances by each call's steps; after the call that completes each
    `log_every_steps` steps, and after the last, it shows the epoch's running loss and
    accuracy, and `run.writer` gets their means over the steps since the previous log
    (`train_loss`, `train_accuracy`), at the global step.
    """
    config = run.config
    steps = run.steps_per_epoch
    first_step = (epoch - 1) * steps
    images, labels = run.splits["train"]
    order = shuffled_order(config.seed, epoch, run.num_train)
    run.model.train()
    metrics = replicate(TrainMetrics.empty(), run.mesh)
    first_calls_s = 0.0
    called = set()
    done = 0
    logged = np.zeros(4)
    augments = run.augment_key is not None
    start = time.perf_counter()
    is_chief = jax.process_index() == 0
    with tqdm(
        total=steps,
        desc=f"epoch {epoch}/{config.num_epochs}",
        unit="batch",
        mininterval=0.5,
        disable=not is_chief,
    ) as bar:
        for num_steps in step_groups(steps, resolve_steps_per_call(config)):
            first_call = num_steps not in called
            if first_call:
                call_start = time.perf_counter() if called else start
                jax.block_until_ready(metrics)
            metrics = train_step(
                run.model,
                run.optimizer,
                metrics,
                images,
                labels,
                order,
                jnp.int32(done),
                batch_size=config.batch_size,
                mesh=run.mesh,
                compute_dtype=config.get("compute_dtype", "float32"),
                num_steps=num_steps,
                recipe=run.step_recipe,
                augment_key=run.augment_key,
                global_step=jnp.int32(first_step + done) if augments else None,
            )
            if first_call:
                jax.block_until_ready(metrics)
                first_calls_s += time.perf_counter() - call_start
                called.add(num_steps)
            before, done = done, done + num_steps
            if done // config.log_every_steps > before // config.log_every_steps or done == steps:
                running = metrics.compute()
                bar.set_postfix(loss=f"{running['loss']:.4f}", acc=f"{running['accuracy']:.4f}")
                sums = _metric_sums(metrics)
                window = sums - logged
                logged = sums
                run.writer.write_scalars(
                    first_step + done,
                    {
                        "train_loss": window[0] / window[1],
                        "train_accuracy": window[2] / window[3],
                    },
                )
            bar.update(num_steps)
    computed = {name: float(to_host(value)) for name, value in metrics.compute().items()}
    return computed, time.perf_counter() - start, first_calls_s


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains `config.model` on `config.dataset`, resuming from `workdir`, and writes results.

    Returns the results dict also written to `{workdir}/{model}_{dataset}_results.json`; a run
    already finished there returns that file without loading data or training. The workdir is
    locked for the whole run, and a resume must be the same run (`trainers.run_identity`).
    """
    check_classification_settings(config)
    with claimed_run(config, workdir) as (files, finished):
        if finished is not None:
            return finished
        run = Run(config, files.results.parent)
        try:
            return train_run(run, files, workdir)
        finally:
            run.writer.close()
            run.checkpointer.close()


def resume_run(run: Run, workdir: str) -> tuple[int, dict]:
    """Restores the latest intact checkpoint of the same run: (its epoch, its metadata)."""
    same_run = SameRun(run.config, workdir, run.data["content_sha256"])
    meta = {
        "history": {key: [] for key in HISTORY_KEYS},
        "throughput": {"images": 0, "seconds": 0.0, "compile_s": 0.0},
    }
    resumed = run.resume(same_run)
    if resumed is None:
        return 0, meta | {"config_changes": []}
    epoch, saved = resumed
    logging.info("Resumed %s from the checkpoint of epoch %d.", run.prefix, epoch)
    return epoch, meta | saved | {"config_changes": same_run.changes}


def train_run(run: Run, files: RunFiles, workdir: str) -> dict:
    """The epochs left to train, each checked for divergence and checkpointed, then results."""
    config = run.config
    params = jax_models.count_params(run.model)
    flops = jax_models.forward_flops(run.model, run.info.image_shape)
    start_epoch, meta = resume_run(run, workdir)
    history, throughput = meta["history"], meta["throughput"]
    is_chief = jax.process_index() == 0
    if start_epoch < config.num_epochs:
        logdir = metric_writer.tensorboard_dir(Path(workdir), run.prefix)
        run.writer = metric_writer.create_writer(logdir, enabled=is_chief)
        run.writer.write_hparams(metric_writer.hparams(config))
    for epoch in range(start_epoch + 1, config.num_epochs + 1):
        epoch_start = time.perf_counter()
        train_metrics, train_s, first_calls_s = train_epoch(run, epoch)
        val = run.evaluate("val")
        check_divergence(
            config,
            epoch,
            train_metrics["loss"],
            float(val["loss"]),
            num_classes=run.info.num_classes,
            checkpointer=run.checkpointer,
        )
        steps = run.steps_per_epoch
        # Throughput leaves out the calls that compile, their images and their seconds alike.
        first_steps = first_calls_steps(steps, resolve_steps_per_call(config))
        throughput["images"] += (steps - first_steps) * config.batch_size
        throughput["seconds"] += train_s - first_calls_s
        throughput["compile_s"] = throughput["compile_s"] or first_calls_s
        record = {
            "train_loss": train_metrics["loss"],
            "train_accuracy": train_metrics["accuracy"],
            "val_loss": float(val["loss"]),
            "val_accuracy": float(val["accuracy"]),
            "epoch_time_s": time.perf_counter() - epoch_start,
        }
        for key, value in record.items():
            history[key].append(value)
        run.writer.write_scalars(
            epoch * steps,
            {
                "val_loss": record["val_loss"],
                "val_accuracy": record["val_accuracy"],
                "learning_rate": run.learning_rate_at(epoch * steps - 1),
                "epoch_time_s": record["epoch_time_s"],
                "epoch": epoch,
            },
        )
        run.checkpointer.save(
            epoch,
            run.state(),
            metrics={"val_accuracy": record["val_accuracy"]},
            meta={
                "history": history,
                "throughput": throughput,
                "config": config.to_dict(),
                "data": run.data,
                "config_changes": meta["config_changes"],
            },
        )
        logging.info(
            "%s epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.1fs",
            run.prefix,
            epoch,
            config.num_epochs,
            *(record[key] for key in HISTORY_KEYS),
        )

    run.writer.flush()
    results = final_results(run, history, throughput, params, flops, meta["config_changes"])
    if is_chief:
        write_json(files.results, results)
        with writing(files.curves):
            plot_curves(history, f"{config.model} on {config.dataset}", files.curves)
    return results


def test_metrics(run: Run) -> dict:
    """Test figures of the best-on-validation checkpoint; `scripts.evaluate` reuses this."""
    best = run.restore_best()
    if best is None:
        raise UserError(
            f"No checkpoint in {run.checkpointer.directory}; train first with scripts.train."
        )
    test = run.evaluate("test")
    report = classification_report(test["confusion"])
    report["per_class"]["names"] = list(run.info.class_names)
    return {
        "test_loss": float(test["loss"]),
        "test_accuracy": float(test["accuracy"]),
        **report,
        "confusion_matrix": test["confusion"].tolist(),
        "best_epoch": best,
    }


def final_results(
    run: Run,
    history: dict,
    throughput: dict,
    params: int,
    flops: int,
    config_changes: list[dict],
) -> dict:
    info: DatasetInfo = run.info
    return {
        "model": run.config.model,
        "dataset": info.name,
        **test_metrics(run),
        "history": history,
        "epochs": len(history["train_loss"]),
        "train_time_s": float(sum(history["epoch_time_s"])),
        "images_per_s": throughput["images"] / max(throughput["seconds"], 1e-9),
        "compile_s": throughput["compile_s"],
        "params": params,
        "flops": flops,
        "config": run.config.to_dict(),
        "config_changes": config_changes,
        "data": run.data,
        "environment": environment(),
    }
