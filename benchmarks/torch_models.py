"""PyTorch twins of the seven study networks, for the throughput benchmark only.

Each twin mirrors its `jax_models` namesake layer for layer (same widths, kernels, strides,
'SAME'-sized outputs, BatchNorm and dropout placement, biases only where the JAX model has
them), so the two frameworks do the same arithmetic and hold the same number of parameters; the
benchmark checks the count before timing. Tensors are NCHW, PyTorch's native layout. Padding
that makes a stride-s layer return ceil(side / s), as 'SAME' does, is written out per layer,
because PyTorch's padding='same' accepts stride 1 only.
"""

from collections.abc import Callable, Sequence

import torch
from torch import nn

TorchFactory = Callable[[int, tuple[int, int, int]], nn.Module]


def same_max_pool(window: int, stride: int) -> nn.MaxPool2d:
    """A max-pool whose output side is ceil(side / stride), like Flax's padding='SAME'."""
    if window == 2 and stride == 2:
        return nn.MaxPool2d(2, 2, ceil_mode=True)
    return nn.MaxPool2d(window, stride, padding=window // 2)


def conv(in_features: int, out_features: int, kernel: int, stride: int = 1, *, bias: bool):
    """A convolution padded so that its output side is ceil(side / stride)."""
    return nn.Conv2d(in_features, out_features, kernel, stride, padding=kernel // 2, bias=bias)


def separable_conv(in_features: int, out_features: int, kernel: int, stride: int = 1):
    """Depthwise k x k then pointwise 1x1, no bias and no nonlinearity in between."""
    return nn.Sequential(
        nn.Conv2d(
            in_features,
            in_features,
            kernel,
            stride,
            padding=kernel // 2,
            groups=in_features,
            bias=False,
        ),
        nn.Conv2d(in_features, out_features, 1, bias=False),
    )


def conv_bn_relu(
    in_features: int,
    out_features: int,
    kernel: int,
    stride: int = 1,
    *,
    batch_norm: bool = True,
    relu: bool = True,
    separable: bool = False,
) -> nn.Sequential:
    """The twin of `jax_models.blocks.ConvBNReLU`."""
    if separable:
        layers = [separable_conv(in_features, out_features, kernel, stride)]
    else:
        layers = [conv(in_features, out_features, kernel, stride, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_features))
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def shortcut(in_features: int, out_features: int, stride: int) -> nn.Module:
    if stride == 1 and in_features == out_features:
        return nn.Identity()
    return conv_bn_relu(in_features, out_features, 1, stride, relu=False)


def pooled_side(side: int, *strides: int) -> int:
    for stride in strides:
        side = -(-side // stride)
    return side


def dropout_classifier(
    in_features: int, hidden: Sequence[int], num_classes: int, rate: float = 0.5
) -> nn.Sequential:
    """(FC -> ReLU -> dropout) per hidden width, then FC to the logits."""
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU(), nn.Dropout(rate)]
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


class GlobalAveragePool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class LeNet5(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, int, int]):
        super().__init__()
        height, width, channels = input_shape
        same = height < 32
        self.c1 = nn.Conv2d(channels, 6, 5, padding=2 if same else 0)
        self.c3 = nn.Conv2d(6, 16, 5)
        shrink = 0 if same else 4
        s4 = pooled_side(pooled_side(height - shrink, 2) - 4, 2)
        s4_width = pooled_side(pooled_side(width - shrink, 2) - 4, 2)
        self.pool = same_max_pool(2, 2)
        self.c5 = nn.Linear(16 * s4 * s4_width, 120)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.c1(x)))
        x = self.pool(torch.relu(self.c3(x)))
        x = torch.relu(self.c5(x.flatten(1)))
        return self.output(torch.relu(self.f6(x)))


def alexnet(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Sequential:
    height, width, features = input_shape
    layers: list[nn.Module] = []
    for out_features, kernel, pool in (
        (64, 5, True),
        (192, 5, True),
        (384, 3, False),
        (256, 3, False),
        (256, 3, True),
    ):
        layers.append(conv_bn_relu(features, out_features, kernel, batch_norm=False))
        features = out_features
        if pool:
            layers.append(same_max_pool(3, 2))
            height, width = pooled_side(height, 2), pooled_side(width, 2)
    classifier = dropout_classifier(height * width * features, (1024, 1024), num_classes)
    return nn.Sequential(*layers, classifier)


def vgg16(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Sequential:
    height, width, features = input_shape
    layers: list[nn.Module] = []
    for widths in ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)):
        for out_features in widths:
            layers.append(conv_bn_relu(features, out_features, 3, batch_norm=False))
            features = out_features
        layers.append(same_max_pool(2, 2))
        height, width = pooled_side(height, 2), pooled_side(width, 2)
    classifier = dropout_classifier(height * width * features, (512, 512), num_classes)
    return nn.Sequential(*layers, classifier)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Linear(channels, hidden)
        self.excite = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(x.mean(dim=(2, 3))))))
        return x * gate[:, :, None, None]


class ResidualBlock(nn.Module):
    def __init__(self, in_features: int, out_features: int, stride: int, se_reduction: int | None):
        super().__init__()
        self.residual = nn.Sequential(
            conv_bn_relu(in_features, out_features, 3, stride),
            conv_bn_relu(out_features, out_features, 3, relu=False),
        )
        if se_reduction is not None:
            self.residual.append(SqueezeExcitation(out_features, se_reduction))
        self.shortcut = shortcut(in_features, out_features, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x) + self.shortcut(x))


def resnet18(
    num_classes: int, input_shape: tuple[int, int, int], se_reduction: int | None = None
) -> nn.Sequential:
    layers: list[nn.Module] = [conv_bn_relu(input_shape[-1], 64, 3)]
    features = 64
    for out_features, num_blocks, stride in ((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)):
        for index in range(num_blocks):
            layers.append(
                ResidualBlock(features, out_features, stride if index == 0 else 1, se_reduction)
            )
            features = out_features
    return nn.Sequential(*layers, GlobalAveragePool(), nn.Linear(features, num_classes))


def senet18(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Sequential:
    return resnet18(num_classes, input_shape, se_reduction=16)


class InceptionModule(nn.Module):
    def __init__(
        self,
        in_features: int,
        conv1x1: int,
        reduce3x3: int,
        conv3x3: int,
        reduce5x5: int,
        conv5x5: int,
        pool_proj: int,
    ):
        super().__init__()
        self.branch1x1 = conv_bn_relu(in_features, conv1x1, 1)
        self.branch3x3 = nn.Sequential(
            conv_bn_relu(in_features, reduce3x3, 1), conv_bn_relu(reduce3x3, conv3x3, 3)
        )
        self.branch5x5 = nn.Sequential(
            conv_bn_relu(in_features, reduce5x5, 1), conv_bn_relu(reduce5x5, conv5x5, 5)
        )
        self.branch_pool = nn.Sequential(
            same_max_pool(3, 1), conv_bn_relu(in_features, pool_proj, 1)
        )
        self.out_features = conv1x1 + conv3x3 + conv5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)


GOOGLENET_STAGES = (
    ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    (
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
    ),
    ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)


def googlenet(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Sequential:
    layers: list[nn.Module] = [conv_bn_relu(input_shape[-1], 192, 3)]
    features = 192
    for index, stage in enumerate(GOOGLENET_STAGES):
        if index > 0:
            layers.append(same_max_pool(3, 2))
        for branch_features in stage:
            layers.append(InceptionModule(features, *branch_features))
            features = layers[-1].out_features
    return nn.Sequential(
        *layers, GlobalAveragePool(), nn.Dropout(0.4), nn.Linear(features, num_classes)
    )


class SeparableResidualBlock(nn.Module):
    def __init__(
        self,
        in_features: int,
        widths: Sequence[int],
        *,
        downsample: bool,
        activate_input: bool = True,
    ):
        super().__init__()
        features = [in_features, *widths]
        units: list[nn.Module] = []
        for index, (a, b) in enumerate(zip(features[:-1], features[1:], strict=True)):
            if index > 0 or activate_input:
                units.append(nn.ReLU())
            units.append(conv_bn_relu(a, b, 3, separable=True, relu=False))
        if downsample:
            units.append(same_max_pool(3, 2))
        self.units = nn.Sequential(*units)
        self.shortcut = shortcut(in_features, widths[-1], 2 if downsample else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(x) + self.shortcut(x)


def xception(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Sequential:
    layers: list[nn.Module] = [
        conv_bn_relu(input_shape[-1], 32, 3),
        conv_bn_relu(32, 64, 3),
    ]
    features = 64
    for index, widths in enumerate(((128, 128), (256, 256), (728, 728))):
        layers.append(
            SeparableResidualBlock(features, widths, downsample=True, activate_input=index > 0)
        )
        features = widths[-1]
    layers += [
        SeparableResidualBlock(features, (728, 728, 728), downsample=False) for _ in range(8)
    ]
    layers.append(SeparableResidualBlock(features, (728, 1024), downsample=True))
    layers += [
        conv_bn_relu(1024, 1536, 3, separable=True),
        conv_bn_relu(1536, 2048, 3, separable=True),
    ]
    return nn.Sequential(
        *layers, GlobalAveragePool(), nn.Dropout(0.5), nn.Linear(2048, num_classes)
    )


TORCH_MODELS: dict[str, TorchFactory] = {
    "lenet5": LeNet5,
    "alexnet": alexnet,
    "googlenet": googlenet,
    "vgg16": vgg16,
    "resnet18": resnet18,
    "xception": xception,
    "senet18": senet18,
}


def create(name: str, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    """The PyTorch twin of `jax_models.create(name, ...)`, for NCHW inputs."""
    return TORCH_MODELS[name](num_classes, input_shape)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
