"""LeNet-5: LeCun, Bottou, Bengio and Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proceedings of the IEEE, 1998.

Kept: the paper's C1-S2-C3-S4-C5-F6-output stack: conv 6 (5x5) - 2x2 pool - conv 16 (5x5) -
2x2 pool - FC 120 - FC 84 - output, no BatchNorm and no dropout.

Adapted: ReLU and max-pooling instead of scaled tanh and trainable average subsampling, full C3
connectivity instead of the paper's sparse connection table, and a softmax classifier instead of
RBF output units, as modern reimplementations do. C1 pads 'SAME' on inputs smaller than 32
pixels, so a 28x28 digit yields the paper's 5x5x16 S4 map just as the paper's 32x32 padded
digits do; 32x32 inputs see exactly the paper's layer sizes.
"""

import jax
from flax import nnx

from jax_models.blocks import conv, flatten, max_pool, pooled_side
from jax_models.registry import register

PAPER_INPUT_SIDE = 32


class LeNet5(nnx.Module):
    def __init__(self, *, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs):
        height, width, channels = input_shape
        padding = "SAME" if height < PAPER_INPUT_SIDE else "VALID"
        self.c1 = nnx.Conv(
            channels, 6, (5, 5), padding=padding, conv_general_dilated=conv, rngs=rngs
        )
        self.c3 = nnx.Conv(6, 16, (5, 5), padding="VALID", conv_general_dilated=conv, rngs=rngs)
        shrink = 0 if padding == "SAME" else 4
        s4_height = pooled_side(pooled_side(height - shrink, 2) - 4, 2)
        s4_width = pooled_side(pooled_side(width - shrink, 2) - 4, 2)
        self.c5 = nnx.Linear(16 * s4_height * s4_width, 120, rngs=rngs)
        self.f6 = nnx.Linear(120, 84, rngs=rngs)
        self.output = nnx.Linear(84, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = max_pool(nnx.relu(self.c1(x)), 2, 2)
        x = max_pool(nnx.relu(self.c3(x)), 2, 2)
        x = nnx.relu(self.c5(flatten(x)))
        x = nnx.relu(self.f6(x))
        return self.output(x)


@register("lenet5")
def lenet5(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> LeNet5:
    """LeNet-5 with ReLU and max-pooling."""
    return LeNet5(num_classes=num_classes, input_shape=input_shape, rngs=rngs)
