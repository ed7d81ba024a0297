"""Parameter count and forward FLOPs per image, read from XLA's cost analysis of the model."""

import jax
import jax.numpy as jnp
from flax import nnx

from jax_models.registry import create


def count_params(model: nnx.Module) -> int:
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


# Any accelerator's lowering takes the native convolutions and pools (`jax_models.blocks`);
# lowering a program for one needs no such device.
NATIVE_FORMS_PLATFORM = "cuda"


def native_forms_flops(traced: jax.stages.Traced) -> float:
    """XLA's FLOP count of a traced program lowered with the native forms. On the CPU,
    `jax_models.cpu_forms` computes the same convolutions with other counts (a banded matmul
    multiplies zeros), and a GPU's compiled program leaves cuDNN's convolutions out: the count
    of the native program is the model's, wherever it runs."""
    cost = traced.lower(lowering_platforms=(NATIVE_FORMS_PLATFORM,)).cost_analysis()
    if isinstance(cost, list):  # older jax returned one dict per device
        cost = cost[0]
    return float(cost["flops"])


def forward_flops(model: nnx.Module, input_shape: tuple[int, int, int]) -> int:
    """FLOPs of one eval-mode forward pass on a single image (a multiply-add counts as two)."""
    graphdef, state = nnx.split(model)

    def forward(state: nnx.State, x: jax.Array) -> jax.Array:
        module = nnx.merge(graphdef, state)
        module.eval()
        return module(x)

    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    return int(native_forms_flops(jax.jit(forward).trace(state, x)))


def complexity(
    name: str, input_shape: tuple[int, int, int], num_classes: int = 10
) -> dict[str, int]:
    """{"params", "flops"} for registered model `name` at `input_shape` (H, W, C)."""
    model = create(name, num_classes=num_classes, input_shape=input_shape)
    return {"params": count_params(model), "flops": forward_flops(model, input_shape)}
