"""Data augmentation on the device, inside the jitted train step: random crops after zero
padding, horizontal flips and cutout, on the uint8 batch the step has just gathered.

Every draw comes from the key the step is handed, so a batch's augmentation is a pure function
of the seed and the step: resuming and several steps per call see the same images. Evaluation
never calls this. Off unless a config turns it on; the study trained without.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

# Datasets whose images mean the same mirrored: not handwritten digits (a mirrored 2 or 7 is no
# digit at all). Flips are skipped on the others even when a recipe asks for them.
MIRROR_SAFE_DATASETS = frozenset({"cifar10", "fashion_mnist"})


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """What one training batch goes through; hashable, so the step can take it as static."""

    crop_padding: int = 0  # pixels of zeros on each side before a random crop back to size
    flip: bool = False  # a horizontal flip of half the images
    cutout: int = 0  # side of a square zeroed at a random centre (DeVries and Taylor, 2017)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str) -> "Augmentation":
        """The config's augmentation on `dataset`, with flips only where they keep the label."""
        return cls(
            crop_padding=int(config["crop_padding"]),
            flip=bool(config["flip"]) and dataset in MIRROR_SAFE_DATASETS,
            cutout=int(config["cutout"]),
        )

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.flip or self.cutout)


def random_crop(images: jax.Array, key: jax.Array, padding: int) -> jax.Array:
    """Each image shifted by up to `padding` pixels each way, zeros filling in (He et al.)."""
    num, height, width, channels = images.shape
    pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    padded = jnp.pad(images, pad)
    corners = jax.random.randint(key, (num, 2), 0, 2 * padding + 1)

    def crop(image: jax.Array, corner: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(image, (corner[0], corner[1], 0), (height, width, channels))

    return jax.vmap(crop)(padded, corners)


def random_flip(images: jax.Array, key: jax.Array) -> jax.Array:
    """Each image mirrored left to right with probability one half."""
    flipped = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    return jnp.where(flipped[:, None, None, None], images[:, :, ::-1, :], images)


def cutout(images: jax.Array, key: jax.Array, size: int) -> jax.Array:
    """Each image with a `size` x `size` square of zeros centred anywhere, cut at the border."""
    num, height, width, _ = images.shape
    row_key, column_key = jax.random.split(key)
    top = jax.random.randint(row_key, (num, 1), 0, height) - size // 2
    left = jax.random.randint(column_key, (num, 1), 0, width) - size // 2
    rows, columns = jnp.arange(height)[None], jnp.arange(width)[None]
    in_rows = (rows >= top) & (rows < top + size)
    in_columns = (columns >= left) & (columns < left + size)
    square = in_rows[:, :, None] & in_columns[:, None, :]
    return jnp.where(square[..., None], jnp.zeros((), images.dtype), images)


def augment(images: jax.Array, key: jax.Array, augmentation: Augmentation) -> jax.Array:
    """`images` (N, H, W, C) through the crops, flips and cutout `augmentation` turns on.

    Each transform draws from its own key folded out of `key`, so turning one on or off does
    not change what the others draw.
    """
    if augmentation.crop_padding:
        images = random_crop(images, jax.random.fold_in(key, 0), augmentation.crop_padding)
    if augmentation.flip:
        images = random_flip(images, jax.random.fold_in(key, 1))
    if augmentation.cutout:
        images = cutout(images, jax.random.fold_in(key, 2), augmentation.cutout)
    return images
