"""The building blocks every model in `jax_models` is assembled from, written once.

Convolutions use He et al.'s (2015) normal initialisation scaled by fan-out, as torchvision does
for VGG and ResNet: the plain (BatchNorm-free) AlexNet and VGG need it to train at depth, and it
is harmless where BatchNorm follows. BatchNorm keeps running statistics with momentum 0.9
(PyTorch's 0.1), the value the Flax ImageNet example uses, so that short CPU runs end with usable
eval-mode statistics. Every pooling and strided convolution pads 'SAME', so a feature map of
side s becomes ceil(s / stride) and 28-pixel inputs never shrink to zero. Convolutions go
through `conv` and pooling through `max_pool`: XLA's native operations wherever the program is
lowered for a GPU or TPU, and the same computations in the forms of `jax_models.cpu_forms`
where it is lowered for the CPU, whose backend runs some of the native ones slowly.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from jax_models import cpu_forms

he_normal = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
    """Max-pooling over `window` x `window` squares with 'SAME' padding (NHWC).

    `reduce_window` max where the program is lowered for a GPU or TPU, maxima of shifted views
    (`cpu_forms.shifted_view_max_pool`) where it is lowered for the CPU. The choice is made at
    lowering, not by the machine that traces: a program exported for CUDA on a CPU-only machine
    pools natively.
    """
    return lax.platform_dependent(
        x,
        cpu=functools.partial(cpu_forms.shifted_view_max_pool, window=window, stride=stride),
        default=functools.partial(
            nnx.max_pool, window_shape=(window, window), strides=(stride, stride), padding="SAME"
        ),
    )


def global_average_pool(x: jax.Array) -> jax.Array:
    """(batch, H, W, C) -> (batch, C)."""
    return jnp.mean(x, axis=(1, 2))


def flatten(x: jax.Array) -> jax.Array:
    """(batch, H, W, C) -> (batch, H * W * C)."""
    return x.reshape(x.shape[0], -1)


def pooled_side(side: int, *strides: int) -> int:
    """Side of a feature map after 'SAME'-padded poolings or convolutions with `strides`."""
    for stride in strides:
        side = -(-side // stride)
    return side


def conv(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    **kwargs,
) -> jax.Array:
    """`lax.conv_general_dilated` for `nnx.Conv`, chosen where the program is lowered: native on
    GPU and TPU (cuDNN's or the TPU's kernels, depthwise convolutions as grouped ones), the
    matmuls and tap sums of `cpu_forms.tap_sum_conv` on the CPU."""
    return lax.platform_dependent(
        lhs,
        rhs,
        cpu=functools.partial(
            cpu_forms.tap_sum_conv, window_strides=window_strides, padding=padding, **kwargs
        ),
        default=functools.partial(
            lax.conv_general_dilated, window_strides=window_strides, padding=padding, **kwargs
        ),
    )


class SeparableConv(nnx.Module):
    """Depthwise-separable convolution (Chollet, 2017): a per-channel k x k convolution, then a
    1x1 pointwise convolution, with no nonlinearity in between (the paper found that best).

    The pointwise convolution is native on every platform: on the CPU, where Eigen runs it
    (`trainers.xla_options`), Xception's step is a fifth faster with it than with the 1x1
    matmul of `cpu_forms.tap_sum_conv` (docs/performance.md), which GoogLeNet's 1x1
    convolutions keep."""

    def __init__(
        self, in_features: int, out_features: int, kernel: int, stride: int = 1, *, rngs: nnx.Rngs
    ):
        self.depthwise = nnx.Conv(
            in_features,
            in_features,
            (kernel, kernel),
            strides=stride,
            feature_group_count=in_features,
            use_bias=False,
            kernel_init=he_normal,
            conv_general_dilated=conv,
            rngs=rngs,
        )
        self.pointwise = nnx.Conv(
            in_features, out_features, (1, 1), use_bias=False, kernel_init=he_normal, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.pointwise(self.depthwise(x))


class ConvBNReLU(nnx.Module):
    """Convolution -> BatchNorm -> ReLU, with each part optional.

    `batch_norm=False` gives the plain conv (with bias) -> ReLU of AlexNet and the original VGG;
    `relu=False` gives the conv -> BN of a projection shortcut or of a block's last layer;
    `separable=True` swaps in a depthwise-separable convolution (Xception).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel: int,
        stride: int = 1,
        *,
        batch_norm: bool = True,
        relu: bool = True,
        separable: bool = False,
        rngs: nnx.Rngs,
    ):
        if separable:
            self.conv = SeparableConv(in_features, out_features, kernel, stride, rngs=rngs)
        else:
            self.conv = nnx.Conv(
                in_features,
                out_features,
                (kernel, kernel),
                strides=stride,
                use_bias=not batch_norm,
                kernel_init=he_normal,
                conv_general_dilated=conv,
                rngs=rngs,
            )
        self.norm = nnx.BatchNorm(out_features, momentum=0.9, rngs=rngs) if batch_norm else None
        self.relu = relu

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return nnx.relu(x) if self.relu else x


def shortcut(
    in_features: int, out_features: int, stride: int, *, rngs: nnx.Rngs
) -> ConvBNReLU | None:
    """He et al.'s projection shortcut (1x1 conv -> BN) where the shape changes; None (identity)
    where it does not."""
    if stride == 1 and in_features == out_features:
        return None
    return ConvBNReLU(in_features, out_features, 1, stride, relu=False, rngs=rngs)


class SqueezeExcitation(nnx.Module):
    """Hu et al.'s (2018) SE block: global average pool ("squeeze"), FC to C/r -> ReLU -> FC to C
    -> sigmoid ("excitation"), then rescale each channel of the input by its gate."""

    def __init__(self, channels: int, reduction: int, *, rngs: nnx.Rngs):
        hidden = max(1, channels // reduction)
        self.squeeze = nnx.Linear(channels, hidden, rngs=rngs)
        self.excite = nnx.Linear(hidden, channels, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        gate = nnx.sigmoid(self.excite(nnx.relu(self.squeeze(global_average_pool(x)))))
        return x * gate[:, None, None, :]


class ResidualBlock(nnx.Module):
    """He et al.'s (2016) basic residual block: 3x3 conv-BN-ReLU, 3x3 conv-BN, plus the
    (projection) shortcut, then ReLU. With `se_reduction`, an SE block recalibrates the residual
    branch before the addition, exactly where Hu et al.'s SE-ResNet module puts it (their Fig. 3).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        stride: int,
        *,
        se_reduction: int | None = None,
        rngs: nnx.Rngs,
    ):
        self.conv1 = ConvBNReLU(in_features, out_features, 3, stride, rngs=rngs)
        self.conv2 = ConvBNReLU(out_features, out_features, 3, relu=False, rngs=rngs)
        self.se = (
            SqueezeExcitation(out_features, se_reduction, rngs=rngs)
            if se_reduction is not None
            else None
        )
        self.shortcut = shortcut(in_features, out_features, stride, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        residual = self.conv2(self.conv1(x))
        if self.se is not None:
            residual = self.se(residual)
        identity = x if self.shortcut is None else self.shortcut(x)
        return nnx.relu(residual + identity)


class SeparableResidualBlock(nnx.Module):
    """Xception's residual module: (ReLU -> separable 3x3 conv -> BN) per width in `widths`, then a
    3x3 stride-2 max-pool when `downsample`, plus the shortcut (a strided 1x1 conv -> BN where the
    shape changes, the identity in the middle flow).

    `activate_input=False` drops the first ReLU, as in the first entry-flow module, whose input
    has just been through conv-BN-ReLU.
    """

    def __init__(
        self,
        in_features: int,
        widths: Sequence[int],
        *,
        downsample: bool,
        activate_input: bool = True,
        rngs: nnx.Rngs,
    ):
        features = [in_features, *widths]
        self.units = nnx.List(
            ConvBNReLU(a, b, 3, separable=True, relu=False, rngs=rngs)
            for a, b in zip(features[:-1], features[1:], strict=True)
        )
        self.downsample = downsample
        self.activate_input = activate_input
        self.shortcut = shortcut(in_features, widths[-1], 2 if downsample else 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        identity = x if self.shortcut is None else self.shortcut(x)
        for index, unit in enumerate(self.units):
            if index > 0 or self.activate_input:
                x = nnx.relu(x)
            x = unit(x)
        if self.downsample:
            x = max_pool(x, 3, 2)
        return x + identity


class InceptionModule(nnx.Module):
    """Szegedy et al.'s (2015) Inception module: four parallel branches concatenated on channels,
    a 1x1 conv; 1x1 reduce -> 3x3 conv; 1x1 reduce -> 5x5 conv; 3x3 max-pool -> 1x1 projection.
    Every conv is conv-BN-ReLU (BatchNorm from Ioffe & Szegedy's BN-Inception)."""

    def __init__(
        self,
        in_features: int,
        conv1x1: int,
        reduce3x3: int,
        conv3x3: int,
        reduce5x5: int,
        conv5x5: int,
        pool_proj: int,
        *,
        rngs: nnx.Rngs,
    ):
        self.branch1x1 = ConvBNReLU(in_features, conv1x1, 1, rngs=rngs)
        self.branch3x3 = nnx.Sequential(
            ConvBNReLU(in_features, reduce3x3, 1, rngs=rngs),
            ConvBNReLU(reduce3x3, conv3x3, 3, rngs=rngs),
        )
        self.branch5x5 = nnx.Sequential(
            ConvBNReLU(in_features, reduce5x5, 1, rngs=rngs),
            ConvBNReLU(reduce5x5, conv5x5, 5, rngs=rngs),
        )
        self.branch_pool = ConvBNReLU(in_features, pool_proj, 1, rngs=rngs)
        self.out_features = conv1x1 + conv3x3 + conv5x5 + pool_proj

    def __call__(self, x: jax.Array) -> jax.Array:
        pooled = max_pool(x, 3, 1)
        branches = (self.branch1x1(x), self.branch3x3(x), self.branch5x5(x))
        return jnp.concatenate((*branches, self.branch_pool(pooled)), axis=-1)


class DropoutClassifier(nnx.Module):
    """The FC classifier of AlexNet and VGG: (FC -> ReLU -> dropout) per hidden width, then an FC
    to the logits. Dropout zeroes hidden outputs, as both papers describe it."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        num_classes: int,
        *,
        rate: float = 0.5,
        rngs: nnx.Rngs,
    ):
        features = [in_features, *hidden]
        self.hidden = nnx.List(
            nnx.Linear(a, b, rngs=rngs) for a, b in zip(features[:-1], features[1:], strict=True)
        )
        self.dropout = nnx.Dropout(rate, rngs=rngs)
        self.logits = nnx.Linear(features[-1], num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.hidden:
            x = self.dropout(nnx.relu(layer(x)))
        return self.logits(x)
