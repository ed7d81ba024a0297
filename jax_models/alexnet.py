"""AlexNet: Krizhevsky, Sutskever and Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012.

Kept: five convolutional layers with ReLU (kernels 5x5, then 3x3, 3x3, 3x3 after the first),
overlapping 3x3 stride-2 max-pooling after conv1, conv2 and conv5, and a classifier of two hidden
FC layers with ReLU and dropout 0.5 on their outputs, then an FC to the logits. Filter counts are
those of the single-tower version (64-192-384-256-256, Krizhevsky's "one weird trick" and
torchvision), since the paper's two-GPU split is a hardware detail.

Adapted: conv1 is 5x5 with stride 1 instead of 11x11 with stride 4, because a stride-4 11x11
filter on a 28 or 32 pixel image would cover a third of it and leave a 7 or 8 pixel map before
the first pool; the three pools then give 4x4x256 features for both 28 and 32 pixel inputs. The
hidden FC layers have 1024 units instead of 4096: with 4,096 input features and 10 classes the
paper's width would put 34 million parameters in the classifier, against 2.5 million in the
convolutions. Local response normalisation is left out, as in torchvision and most
reimplementations (Simonyan and Zisserman found it does not help), and convolutions use He
initialisation instead of N(0, 0.01).
"""

import jax
from flax import nnx

from jax_models.blocks import ConvBNReLU, DropoutClassifier, flatten, max_pool, pooled_side
from jax_models.registry import register

# (filters, kernel, followed by an overlapping 3x3 stride-2 max-pool) for conv1 .. conv5.
CONV_LAYERS = ((64, 5, True), (192, 5, True), (384, 3, False), (256, 3, False), (256, 3, True))
CLASSIFIER_HIDDEN = (1024, 1024)


class AlexNet(nnx.Module):
    def __init__(self, *, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs):
        height, width, features = input_shape
        convs = []
        for out_features, kernel, pool in CONV_LAYERS:
            convs.append(ConvBNReLU(features, out_features, kernel, batch_norm=False, rngs=rngs))
            features = out_features
            if pool:
                height, width = pooled_side(height, 2), pooled_side(width, 2)
        self.convs = nnx.List(convs)
        self.pool_after = tuple(pool for _, _, pool in CONV_LAYERS)
        self.classifier = DropoutClassifier(
            height * width * features, CLASSIFIER_HIDDEN, num_classes, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv, pool in zip(self.convs, self.pool_after, strict=True):
            x = conv(x)
            if pool:
                x = max_pool(x, 3, 2)
        return self.classifier(flatten(x))


@register("alexnet")
def alexnet(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> AlexNet:
    """AlexNet with the single-tower filter counts and the small-image conv1."""
    return AlexNet(num_classes=num_classes, input_shape=input_shape, rngs=rngs)
