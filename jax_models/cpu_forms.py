"""Forms of convolution and max-pooling that XLA's CPU backend runs faster than its native ones.

XLA:CPU differentiates `reduce_window` max-pooling through a slow `select_and_scatter`, feeds the
kernel gradient of a 1x1 convolution through transposed copies of both operands, and runs
depthwise convolutions and convolutions on maps smaller than their kernel in a slow generic
loop. The functions here compute the same values (and gradients, up to float rounding) from
slices, matmuls and elementwise maxima, sums and products instead. They pay for it in
activation memory (every shifted view is kept for the backward pass) and would only slow down
a GPU or TPU, whose native kernels have no such gaps, so `jax_models.blocks` selects them
through `lax.platform_dependent` only where a program is lowered for the CPU. The measurements
behind each form are in docs/performance.md.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax


def shifted_view_max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
    """Max-pooling over `window` x `window` squares with 'SAME' padding (NHWC), as a pass over
    rows, then one over columns, each the maximum of `window` shifted views.

    The values are those of `reduce_window` max-pooling; the gradients differ only where a
    window holds tied maxima, which then share the gradient instead of one taking all of it.
    """
    return _max_pool_1d(_max_pool_1d(x, 1, window, stride), 2, window, stride)


def _max_pool_1d(x: jax.Array, axis: int, window: int, stride: int) -> jax.Array:
    size = x.shape[axis]
    out_size = -(-size // stride)  # 'SAME': ceil(size / stride)
    total_pad = max((out_size - 1) * stride + window - size, 0)
    pads = [(0, 0)] * x.ndim
    pads[axis] = (total_pad // 2, total_pad - total_pad // 2)
    padded = jnp.pad(x, pads, constant_values=-jnp.inf)
    span = (out_size - 1) * stride + 1
    views = [lax.slice_in_dim(padded, i, i + span, stride, axis) for i in range(window)]
    return functools.reduce(jnp.maximum, views)


def tap_sum_conv(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    **kwargs,
) -> jax.Array:
    """`lax.conv_general_dilated` for `nnx.Conv` on NHWC maps, except for three forms that XLA's
    CPU backend runs slowly, computed here as matrix products or sums over kernel taps:

    - a 1x1 convolution (any stride, 'SAME' or 'VALID'): one matmul over the channel axis of the
      (strided) input, whose kernel gradient is then a matmul too;
    - a stride-1 'SAME' depthwise convolution, and a dense one on a map smaller than its
      kernel: sums over kernel taps of shifted input views (times the tap's kernel row for a
      depthwise convolution, matmuls with it for a dense one).

    Each is the same convolution, so parameters and outputs do not change (up to float
    rounding). Every other convolution is `lax.conv_general_dilated` itself.
    """
    height, width, in_features = lhs.shape[1:]
    kernel_height, kernel_width, kernel_in_features, out_features = rhs.shape
    groups = kwargs.get("feature_group_count", 1)
    precision = kwargs.get("precision")
    input_dilated = any(step != 1 for step in kwargs.get("lhs_dilation") or ())
    pointwise = (kernel_height, kernel_width, groups) == (1, 1, 1) and not input_dilated
    if pointwise and padding in ("SAME", "VALID"):
        # Either padding leaves a 1x1 window inside the map: output side ceil(side / stride).
        row_stride, column_stride = window_strides
        return jnp.matmul(lhs[:, ::row_stride, ::column_stride], rhs[0, 0], precision=precision)
    dilations = (*(kwargs.get("lhs_dilation") or ()), *(kwargs.get("rhs_dilation") or ()))
    depthwise = groups == in_features == out_features > 1 and kernel_in_features == 1
    dense_on_small_map = groups == 1 and (height < kernel_height or width < kernel_width)
    plain = padding == "SAME" and set(window_strides) == {1} and set(dilations) <= {1}
    if not (plain and (depthwise or dense_on_small_map)):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)
    top, left = (kernel_height - 1) // 2, (kernel_width - 1) // 2
    padded = jnp.pad(
        lhs,
        ((0, 0), (top, kernel_height - 1 - top), (left, kernel_width - 1 - left), (0, 0)),
    )
    taps = [
        (padded[:, i : i + height, j : j + width], rhs[i, j])
        for i in range(kernel_height)
        for j in range(kernel_width)
    ]
    if depthwise:
        return sum(view * kernel[0] for view, kernel in taps)
    return sum(jnp.matmul(view, kernel, precision=precision) for view, kernel in taps)
