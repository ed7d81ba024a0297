"""ResNet: He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

Kept: stages of basic residual blocks (two 3x3 conv-BN layers around an identity shortcut),
downsampling by a stride-2 first conv in a stage, projection shortcuts (1x1 conv + BN, the
paper's option B) wherever the shape changes, BatchNorm after every conv, global average pooling
and one FC layer. resnet18 keeps Table 1's four stages of 2 blocks with 64-128-256-512 filters;
resnet20 and resnet56 are the paper's own CIFAR-10 networks (Section 4.2: 6n+2 layers, three
stages of n blocks with 16-32-64 filters on 32, 16 and 8 pixel maps).

Adapted: resnet18 replaces the ImageNet stem (7x7 stride-2 conv and 3x3 stride-2 max-pool) with
one 3x3 stride-1 conv of 64 filters, as kuangliu/pytorch-cifar does, because the stem's 4x
downsampling would leave a 28 or 32 pixel image at 1x1 before the last stage; its stages then see
32-16-8-4 pixel maps. The CIFAR networks use projection shortcuts where the paper used
zero-padded identity shortcuts (option A), since the study asks for projection shortcuts; that
adds 2,752 parameters to each of them.
"""

from collections.abc import Sequence

import jax
from flax import nnx

from jax_models.blocks import ConvBNReLU, ResidualBlock, global_average_pool
from jax_models.registry import register

Stage = tuple[int, int, int]  # (output channels, residual blocks, stride of the first block)

# He et al., Table 1, conv2_x .. conv5_x of the 18-layer network.
RESNET18_STAGES: tuple[Stage, ...] = ((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2))


def cifar_stages(blocks_per_stage: int) -> tuple[Stage, ...]:
    """He et al., Section 4.2: the 6n+2-layer CIFAR-10 network's three stages."""
    n = blocks_per_stage
    return ((16, n, 1), (32, n, 2), (64, n, 2))


class ResNet(nnx.Module):
    """3x3 conv-BN-ReLU stem -> residual stages -> global average pool -> FC.

    `se_reduction` puts a squeeze-and-excitation block in every residual block (SENet).
    """

    def __init__(
        self,
        stem_features: int,
        stages: Sequence[Stage],
        *,
        num_classes: int,
        input_shape: tuple[int, int, int],
        se_reduction: int | None = None,
        rngs: nnx.Rngs,
    ):
        self.stem = ConvBNReLU(input_shape[-1], stem_features, 3, rngs=rngs)
        blocks = []
        features = stem_features
        for out_features, num_blocks, stride in stages:
            for index in range(num_blocks):
                blocks.append(
                    ResidualBlock(
                        features,
                        out_features,
                        stride if index == 0 else 1,
                        se_reduction=se_reduction,
                        rngs=rngs,
                    )
                )
                features = out_features
        self.blocks = nnx.List(blocks)
        self.head = nnx.Linear(features, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(global_average_pool(x))


@register("resnet18")
def resnet18(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> ResNet:
    """ResNet-18: Table 1's 18-layer network with the 3x3 small-image stem."""
    return ResNet(64, RESNET18_STAGES, num_classes=num_classes, input_shape=input_shape, rngs=rngs)


@register("resnet20")
def resnet20(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> ResNet:
    """ResNet-20: the paper's CIFAR-10 network with n = 3."""
    return ResNet(16, cifar_stages(3), num_classes=num_classes, input_shape=input_shape, rngs=rngs)


@register("resnet56")
def resnet56(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> ResNet:
    """ResNet-56: the paper's CIFAR-10 network with n = 9."""
    return ResNet(16, cifar_stages(9), num_classes=num_classes, input_shape=input_shape, rngs=rngs)
