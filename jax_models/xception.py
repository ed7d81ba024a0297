"""Xception: Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017.

Kept: the paper's Fig. 5 layer for layer. Entry flow: conv 32 -> conv 64 (3x3 conv-BN-ReLU), then
three residual modules of two separable 3x3 convs (128, 256, 728 filters) each closed by a 3x3
stride-2 max-pool, with strided 1x1 conv shortcuts. Middle flow: eight residual modules of three
ReLU -> separable conv 728 -> BN units around identity shortcuts. Exit flow: a residual module of
separable convs 728 and 1024 with a max-pool and a 1x1 shortcut, separable convs 1536 and 2048
with ReLU, global average pooling, dropout 0.5 before the logistic-regression layer (the paper's
ImageNet setting) and no extra FC layers. BatchNorm follows every conv and separable conv, and no
nonlinearity sits between the depthwise and pointwise parts, as in the paper.

Adapted: conv1 has stride 1 instead of 2 and all convs pad 'SAME' instead of 'VALID', as in the
CIFAR reimplementations (e.g. weiaicunzai/pytorch-cifar100), because the paper's 299-pixel input
is downsampled 32x and a 28 or 32 pixel image would vanish; here the four stride-2 modules take
32 pixels to 16-8-4-2 (28 to 14-7-4-2), so the middle flow runs on 4x4 maps as the paper's runs
on 19x19 ones.
"""

import jax
from flax import nnx

from jax_models.blocks import ConvBNReLU, SeparableResidualBlock, global_average_pool
from jax_models.registry import register

# Chollet, Fig. 5.
ENTRY_CONVS = (32, 64)
ENTRY_MODULES = ((128, 128), (256, 256), (728, 728))
MIDDLE_MODULE = (728, 728, 728)
MIDDLE_REPEATS = 8
EXIT_MODULE = (728, 1024)
EXIT_CONVS = (1536, 2048)
DROPOUT_RATE = 0.5


class Xception(nnx.Module):
    def __init__(self, *, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs):
        features = input_shape[-1]
        entry_flow = []
        for out_features in ENTRY_CONVS:
            entry_flow.append(ConvBNReLU(features, out_features, 3, rngs=rngs))
            features = out_features
        for index, widths in enumerate(ENTRY_MODULES):
            entry_flow.append(
                SeparableResidualBlock(
                    features, widths, downsample=True, activate_input=index > 0, rngs=rngs
                )
            )
            features = widths[-1]
        middle_flow = [
            SeparableResidualBlock(features, MIDDLE_MODULE, downsample=False, rngs=rngs)
            for _ in range(MIDDLE_REPEATS)
        ]
        exit_flow = [SeparableResidualBlock(features, EXIT_MODULE, downsample=True, rngs=rngs)]
        features = EXIT_MODULE[-1]
        for out_features in EXIT_CONVS:
            exit_flow.append(ConvBNReLU(features, out_features, 3, separable=True, rngs=rngs))
            features = out_features
        self.entry_flow = nnx.Sequential(*entry_flow)
        self.middle_flow = nnx.Sequential(*middle_flow)
        self.exit_flow = nnx.Sequential(*exit_flow)
        self.dropout = nnx.Dropout(DROPOUT_RATE, rngs=rngs)
        self.head = nnx.Linear(features, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.exit_flow(self.middle_flow(self.entry_flow(x)))
        return self.head(self.dropout(global_average_pool(x)))


@register("xception")
def xception(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> Xception:
    """Xception with the stride-1 small-image entry conv."""
    return Xception(num_classes=num_classes, input_shape=input_shape, rngs=rngs)
