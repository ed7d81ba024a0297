"""Training recipes as configuration: the optimizer, learning-rate schedule, loss and augmentation.

The study trains with one recipe, `STUDY_RECIPE` (Adam at a constant 1e-3, cross-entropy on
one-hot labels, no augmentation), and it stays the default with its exact results: a config
that asks for nothing else builds the very `optax.adam(1e-3)` and loss of earlier versions.
Every other recipe (configs/strong.py) is a change of these keys only, so it is recorded in
each run's config, checked on resume (`trainers.run_identity`) and applied to a whole grid.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import optax

from trainers.augment import Augmentation

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup_cosine", "one_cycle")

# The study's recipe, key by key: what configs/default.py sets, and what a checkpoint written
# before these keys existed was trained with.
STUDY_RECIPE: dict[str, Any] = {
    "recipe": "study",
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "schedule": "constant",
    "warmup_fraction": 0.0,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 0.0,
    "grad_clip_norm": 0.0,
    "label_smoothing": 0.0,
    "crop_padding": 0,
    "flip": False,
    "cutout": 0,
}
# The keys a recipe consists of; a grid sets them for all its pairs (`configs/compare.py`).
RECIPE_KEYS: tuple[str, ...] = tuple(STUDY_RECIPE)

# Mixed into the seed for the augmentation's keys, so they never meet the keys of the epochs'
# shuffles (`trainers.train.shuffled_order` folds in the epoch number, never this large).
_AUGMENT_STREAM = 2**31 - 1


class StepRecipe(NamedTuple):
    """What the jitted train step needs of the recipe; hashable, so it is a static argument."""

    label_smoothing: float = 0.0
    augmentation: Augmentation = Augmentation()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str) -> "StepRecipe":
        return cls(float(config["label_smoothing"]), Augmentation.from_config(config, dataset))


STUDY_STEP = StepRecipe()  # the study's step: plain cross-entropy, no augmentation


def schedule_spans_run(config: Mapping[str, Any]) -> bool:
    """Whether the learning rate depends on the run's total steps, and so on `num_epochs`.

    True for every schedule but a constant one without warm-up; such a run cannot grow its
    `num_epochs` on resume and still be the run an uninterrupted one would have been.
    """
    recipe = {**STUDY_RECIPE, **config}
    return recipe["schedule"] != "constant" or recipe["warmup_fraction"] > 0


def learning_rate(config: Mapping[str, Any], total_steps: int) -> float | optax.Schedule:
    """The learning rate of each update: the peak `learning_rate`, warmed up linearly from 0
    over `warmup_fraction` of the run's steps, then held (`constant`), annealed to 0 along a
    half cosine (`warmup_cosine`, Loshchilov and Hutter) or linearly (`one_cycle`, the
    triangle of Smith's one-cycle policy as David Page's and airbench's CIFAR runs use it).

    A constant rate without warm-up stays a plain float, as the study's Adam took it.
    """
    peak = float(config["learning_rate"])
    warmup = round(config["warmup_fraction"] * total_steps)
    schedule = config["schedule"]
    if schedule == "constant" and warmup == 0:
        return peak
    rest = total_steps - warmup
    if schedule == "constant":
        after = optax.constant_schedule(peak)
    elif schedule == "warmup_cosine":
        after = optax.cosine_decay_schedule(peak, max(rest, 1))
    else:
        after = optax.linear_schedule(peak, 0.0, max(rest, 1))
    if warmup == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def _kernels(params: Any) -> Any:
    """True for the convolution and dense kernels, the weights that decay: not the biases nor
    BatchNorm's scales and offsets, as in big_vision and most recipes since Goyal et al."""
    return jax.tree.map(lambda param: param.ndim > 1, params)


def optimizer(config: Mapping[str, Any], total_steps: int) -> optax.GradientTransformation:
    """The recipe's optax optimizer over a run of `total_steps` updates.

    `adamw` decays weights decoupled from the gradient (Loshchilov and Hutter); `sgd` adds
    `weight_decay` times the weights to the gradient before momentum, as PyTorch's SGD and the
    CIFAR recipes built on it do. Clipping, when on, scales the loss gradient to a global norm
    of at most `grad_clip_norm` first. The study's recipe is exactly `optax.adam(1e-3)`.
    """
    rate = learning_rate(config, total_steps)
    decay = float(config["weight_decay"])
    name = config["optimizer"]
    if name == "adam":
        transform = optax.adam(rate)
    elif name == "adamw":
        transform = optax.adamw(rate, weight_decay=decay, mask=_kernels)
    else:
        transform = optax.sgd(rate, momentum=config["momentum"], nesterov=config["nesterov"])
        if decay:
            transform = optax.chain(optax.add_decayed_weights(decay, mask=_kernels), transform)
    if config["grad_clip_norm"]:
        transform = optax.chain(optax.clip_by_global_norm(config["grad_clip_norm"]), transform)
    return transform


def augment_key(seed: int) -> jax.Array:
    """The run's root key of augmentation; each step folds in its global step number, so a
    step's crops and flips depend on the seed and the step alone: a resumed run and one of
    several steps per call draw the same ones."""
    return jax.random.fold_in(jax.random.key(seed), _AUGMENT_STREAM)


def describe(config: Mapping[str, Any], dataset: str | None = None) -> str:
    """One line naming what a recipe does, for reports: `sgd (Nesterov momentum 0.9), ...`."""
    recipe = {**STUDY_RECIPE, **config}
    name = recipe["optimizer"]
    if name == "sgd":
        kind = "Nesterov momentum" if recipe["nesterov"] else "momentum"
        name = f"sgd ({kind} {recipe['momentum']:g})"
    parts = [f"{name}, learning rate {recipe['learning_rate']:g} {recipe['schedule']}"]
    if recipe["warmup_fraction"]:
        parts[0] += f" after a {recipe['warmup_fraction']:.0%} warm-up"
    if recipe["weight_decay"]:
        parts.append(f"weight decay {recipe['weight_decay']:g}")
    if recipe["grad_clip_norm"]:
        parts.append(f"gradients clipped to norm {recipe['grad_clip_norm']:g}")
    if recipe["label_smoothing"]:
        parts.append(f"label smoothing {recipe['label_smoothing']:g}")
    augmentation = Augmentation.from_config(recipe, dataset) if dataset else None
    crops = f"random crops after {recipe['crop_padding']}-pixel zero padding"
    augments = [crops] if recipe["crop_padding"] else []
    if recipe["flip"]:
        flips = augmentation is None or augmentation.flip
        augments.append("horizontal flips" if flips else "no flips (digits)")
    if recipe["cutout"]:
        augments.append(f"cutout {recipe['cutout']} px")
    parts.append(", ".join(augments) if augments else "no augmentation")
    return "; ".join(parts)
