"""SENet: Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018.

Kept: the SE-ResNet module (the paper's Fig. 3): in every residual block, the residual branch's
output is squeezed by global average pooling, excited by FC (C -> C/16) -> ReLU -> FC (C/16 -> C)
-> sigmoid, and rescales its channels before the addition with the shortcut; reduction ratio
r = 16, the paper's default. The host networks are exactly this package's resnet18 and resnet20,
so an SE network and its plain counterpart differ only by the SE blocks.

Adapted: the paper's SE-ResNets are the ImageNet ResNet-50/101/152; here SE is added to the
small-image ResNet-18 (3x3 stride-1 stem instead of the ImageNet stem, as kuangliu/pytorch-cifar's
SENet18, but with post-activation blocks as in the paper rather than that repository's
pre-activation ones) and to He et al.'s CIFAR ResNet-20 (as moskomule/senet.pytorch's
se_resnet20). With r = 16, the first stage of se_resnet20 (16 channels) excites through a single
hidden unit, as in that reimplementation. See resnet.py for the ResNet adaptations.
"""

from flax import nnx

from jax_models.registry import register
from jax_models.resnet import RESNET18_STAGES, ResNet, cifar_stages

SE_REDUCTION = 16  # Hu et al.'s ablation: r = 16 balances accuracy against cost.


@register("senet18")
def senet18(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> ResNet:
    """SE-ResNet-18: resnet18 with an SE block in each of its 8 residual blocks."""
    return ResNet(
        64,
        RESNET18_STAGES,
        se_reduction=SE_REDUCTION,
        num_classes=num_classes,
        input_shape=input_shape,
        rngs=rngs,
    )


@register("se_resnet20")
def se_resnet20(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> ResNet:
    """SE-ResNet-20: resnet20 with an SE block in each of its 9 residual blocks."""
    return ResNet(
        16,
        cifar_stages(3),
        se_reduction=SE_REDUCTION,
        num_classes=num_classes,
        input_shape=input_shape,
        rngs=rngs,
    )
