"""GoogLeNet: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.

Kept: the nine Inception modules 3a-5b with the channel counts of the paper's Table 1, each with
a 1x1 branch, a 1x1 -> 3x3 branch, a 1x1 -> 5x5 branch and a 3x3 max-pool -> 1x1 branch
concatenated; 3x3 stride-2 max-pools after 3b and 4e; global average pooling, dropout 0.4 and
one FC layer to the logits.

Adapted: the ImageNet stem (7x7 stride-2 conv, max-pool, 1x1 and 3x3 convs, max-pool: 8x
downsampling) becomes one 3x3 stride-1 conv to 192 channels, as in kuangliu/pytorch-cifar,
because 8x downsampling of a 28 or 32 pixel image would leave the Inception stages 4x4, 2x2 and
1x1 maps; here they see 32-16-8 (28-14-7) pixel maps, and the final average pool covers the 8x8
(7x7) map as the paper's covers 7x7. Every conv is followed by BatchNorm (from BN-Inception,
Ioffe and Szegedy 2015), which lets the net train without the paper's two auxiliary classifiers;
those are left out (the paper used them only as a training aid and discarded them at inference).
Unlike kuangliu, the 5x5 branch keeps a real 5x5 conv rather than two 3x3 convs.

googlenet_s2 keeps a little of the paper's stem downsampling: a 3x3 stride-2 max-pool after the
stem conv, so the Inception stages see 16-8-4 (14-7-4) pixel maps. The modules are unchanged;
the forward pass costs about a quarter of googlenet's, which is what makes GoogLeNet affordable
in the study's CPU budget.
"""

import jax
from flax import nnx

from jax_models.blocks import ConvBNReLU, InceptionModule, global_average_pool, max_pool
from jax_models.registry import register

STEM_FEATURES = 192
# Szegedy et al., Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj per module.
# A 3x3 stride-2 max-pool separates the stages.
INCEPTION_STAGES = (
    (
        (64, 96, 128, 16, 32, 32),  # 3a
        (128, 128, 192, 32, 96, 64),  # 3b
    ),
    (
        (192, 96, 208, 16, 48, 64),  # 4a
        (160, 112, 224, 24, 64, 64),  # 4b
        (128, 128, 256, 24, 64, 64),  # 4c
        (112, 144, 288, 32, 64, 64),  # 4d
        (256, 160, 320, 32, 128, 128),  # 4e
    ),
    (
        (256, 160, 320, 32, 128, 128),  # 5a
        (384, 192, 384, 48, 128, 128),  # 5b
    ),
)
DROPOUT_RATE = 0.4


class GoogLeNet(nnx.Module):
    def __init__(
        self,
        *,
        num_classes: int,
        input_shape: tuple[int, int, int],
        stem_pool: bool = False,
        rngs: nnx.Rngs,
    ):
        self.stem_pool = stem_pool
        self.stem = ConvBNReLU(input_shape[-1], STEM_FEATURES, 3, rngs=rngs)
        stages = []
        features = STEM_FEATURES
        for stage in INCEPTION_STAGES:
            modules = []
            for branch_features in stage:
                modules.append(InceptionModule(features, *branch_features, rngs=rngs))
                features = modules[-1].out_features
            stages.append(nnx.Sequential(*modules))
        self.stages = nnx.List(stages)
        self.dropout = nnx.Dropout(DROPOUT_RATE, rngs=rngs)
        self.head = nnx.Linear(features, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem(x)
        if self.stem_pool:
            x = max_pool(x, 3, 2)
        for index, stage in enumerate(self.stages):
            if index > 0:
                x = max_pool(x, 3, 2)
            x = stage(x)
        return self.head(self.dropout(global_average_pool(x)))


@register("googlenet")
def googlenet(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> GoogLeNet:
    """GoogLeNet (Inception v1) with the small-image stem and BatchNorm."""
    return GoogLeNet(num_classes=num_classes, input_shape=input_shape, rngs=rngs)


@register("googlenet_s2")
def googlenet_s2(
    *, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs
) -> GoogLeNet:
    """GoogLeNet with a stride-2 max-pool after the stem: the same modules on 4x fewer pixels."""
    return GoogLeNet(num_classes=num_classes, input_shape=input_shape, stem_pool=True, rngs=rngs)
