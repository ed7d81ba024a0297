"""VGG: Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015.

Kept: the paper's configurations A (vgg11) and D (vgg16) layer for layer: stacks of 3x3 stride-1
convolutions with ReLU (64-128-256-512-512 filters), each stack closed by a 2x2 stride-2
max-pool, five pools in all, then three FC layers with dropout 0.5 after the two hidden ones.
vgg11 and vgg16 are the paper's BatchNorm-free networks; vgg11_bn and vgg16_bn add BatchNorm
after every convolution (the torchvision and kuangliu/pytorch-cifar variant, which trains more
easily from scratch).

Adapted: the two hidden FC layers have 512 units instead of 4096, as in the usual CIFAR
reimplementations (chengyangfu/pytorch-vgg-cifar10; kuangliu keeps a single FC), because after
five pools a 28 or 32 pixel image is a 1x1x512 map (the paper's 224 pixels give 7x7x512), and
4096-wide layers on 512 inputs would hold two thirds of the parameters for 10 classes. Pools pad
'SAME', so 28 pixels go 14-7-4-2-1 instead of vanishing at the fifth pool. Convolutions use He
initialisation instead of the paper's pre-training of the deeper nets from configuration A.
"""

from collections.abc import Sequence

import jax
from flax import nnx

from jax_models.blocks import ConvBNReLU, DropoutClassifier, flatten, max_pool, pooled_side
from jax_models.registry import register

# Simonyan and Zisserman, Table 1: the 3x3 conv widths of each stack; a 2x2 max-pool closes each.
CONFIG_A = ((64,), (128,), (256, 256), (512, 512), (512, 512))
CONFIG_D = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
CLASSIFIER_HIDDEN = (512, 512)


class VGG(nnx.Module):
    """The conv stacks of `config`, each closed by a 2x2 max-pool, then the dropout classifier."""

    def __init__(
        self,
        config: Sequence[Sequence[int]],
        *,
        batch_norm: bool,
        num_classes: int,
        input_shape: tuple[int, int, int],
        rngs: nnx.Rngs,
    ):
        height, width, features = input_shape
        stacks = []
        for widths in config:
            stack = []
            for out_features in widths:
                stack.append(
                    ConvBNReLU(features, out_features, 3, batch_norm=batch_norm, rngs=rngs)
                )
                features = out_features
            stacks.append(nnx.Sequential(*stack))
            height, width = pooled_side(height, 2), pooled_side(width, 2)
        self.stacks = nnx.List(stacks)
        self.classifier = DropoutClassifier(
            height * width * features, CLASSIFIER_HIDDEN, num_classes, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for stack in self.stacks:
            x = max_pool(stack(x), 2, 2)
        return self.classifier(flatten(x))


@register("vgg11")
def vgg11(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> VGG:
    """VGG-11: configuration A, without BatchNorm."""
    return VGG(
        CONFIG_A, batch_norm=False, num_classes=num_classes, input_shape=input_shape, rngs=rngs
    )


@register("vgg11_bn")
def vgg11_bn(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> VGG:
    """VGG-11 with BatchNorm after every convolution."""
    return VGG(
        CONFIG_A, batch_norm=True, num_classes=num_classes, input_shape=input_shape, rngs=rngs
    )


@register("vgg16")
def vgg16(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> VGG:
    """VGG-16: configuration D, without BatchNorm."""
    return VGG(
        CONFIG_D, batch_norm=False, num_classes=num_classes, input_shape=input_shape, rngs=rngs
    )


@register("vgg16_bn")
def vgg16_bn(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> VGG:
    """VGG-16 with BatchNorm after every convolution."""
    return VGG(
        CONFIG_D, batch_norm=True, num_classes=num_classes, input_shape=input_shape, rngs=rngs
    )
