"""LeNet-5 (LeCun et al., 1998, "Gradient-based learning applied to document recognition").

Kept: conv(6, 5x5) - pool - conv(16, 5x5) - pool - FC 120 - FC 84 - FC classes, the paper's
C1-S2-C3-S4-C5-F6-output stack. Adapted: ReLU and max-pooling instead of scaled tanh and
trainable average subsampling, full C3 connectivity instead of the sparse table, and a softmax
classifier instead of RBF units, as every modern reimplementation does. The first conv pads
('SAME') so 28x28 inputs behave like the paper's 32x32 padded digits; 32x32 inputs see the
same layer sizes as in the paper.
"""

import jax
from flax import nnx

from jax_models.registry import register


class LeNet5(nnx.Module):
    def __init__(self, *, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs):
        height, width, channels = input_shape
        pad = "SAME" if height < 32 else "VALID"
        self.conv1 = nnx.Conv(channels, 6, (5, 5), padding=pad, rngs=rngs)
        self.conv2 = nnx.Conv(6, 16, (5, 5), padding="VALID", rngs=rngs)
        out_h = ((height if pad == "SAME" else height - 4) // 2 - 4) // 2
        out_w = ((width if pad == "SAME" else width - 4) // 2 - 4) // 2
        self.fc1 = nnx.Linear(16 * out_h * out_w, 120, rngs=rngs)
        self.fc2 = nnx.Linear(120, 84, rngs=rngs)
        self.head = nnx.Linear(84, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.max_pool(nnx.relu(self.conv1(x)), (2, 2), strides=(2, 2))
        x = nnx.max_pool(nnx.relu(self.conv2(x)), (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        x = nnx.relu(self.fc1(x))
        x = nnx.relu(self.fc2(x))
        return self.head(x)


@register("lenet5")
def lenet5(*, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> LeNet5:
    return LeNet5(num_classes=num_classes, input_shape=input_shape, rngs=rngs)
