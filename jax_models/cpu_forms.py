"""Forms of convolution and max-pooling that XLA's CPU backend runs faster than its native ones.

XLA:CPU differentiates `reduce_window` max-pooling through a slow `select_and_scatter`, feeds the
kernel gradient of a 1x1 convolution through transposed copies of both operands, runs depthwise
convolutions and convolutions on maps smaller than their kernel in a slow generic loop, and
recomputes a convolution's input inside the copy its kernel gradient reads. The functions here
compute the same values (and gradients, up to float rounding) from slices, matmuls and
elementwise maxima, sums and products instead, and store native convolutions' inputs once.
They pay for it in activation memory (every shifted view is kept for the backward pass) and
would only slow down a GPU or TPU, whose native kernels have no such gaps, so
`jax_models.blocks` selects them through `lax.platform_dependent` only where a program is
lowered for the CPU. The measurements behind each form are in docs/performance.md.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
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


def _same_padded(lhs: jax.Array, kernel_height: int, kernel_width: int) -> jax.Array:
    """The NHWC input padded as a stride-1 'SAME' convolution pads it."""
    pads = lax.padtype_to_pads(lhs.shape[1:3], (kernel_height, kernel_width), (1, 1), "SAME")
    return jnp.pad(lhs, ((0, 0), *pads, (0, 0)))


def _shifted_views(lhs: jax.Array, kernel_height: int, kernel_width: int) -> list[jax.Array]:
    """Each kernel tap's view of the 'SAME'-padded NHWC input, taps in row-major order."""
    height, width = lhs.shape[1:3]
    padded = _same_padded(lhs, kernel_height, kernel_width)
    return [
        padded[:, i : i + height, j : j + width]
        for i in range(kernel_height)
        for j in range(kernel_width)
    ]


# XLA:CPU hands a convolution to YNNPACK only if it has more than 16 input or output features.
# Eigen runs the narrower ones, slowest with few input features: `banded_matmul_conv` beat it
# at these widths (LeNet-5's convolutions 2 to 5 times, 3 to 16 features on 32x32 maps by 15 %)
# and lost from 8 input features up (16 to 16 on 14x14 to 32x32 maps: 2 to 4 times slower),
# as it did for a 5x5 'SAME' 6-to-16 convolution on 32x32 maps, which no network here has.
BANDED_MAX_IN_FEATURES = 6
BANDED_MAX_OUT_FEATURES = 16
# Output columns per row of `banded_matmul_conv`'s matmul: the fastest for LeNet-5's
# convolutions at batch 128 (2, 3, 8, 14 and 28 were slower, docs/performance.md).
BAND_COLUMNS = 4


def banded_matmul_conv(
    lhs: jax.Array,
    rhs: jax.Array,
    padding: str | Sequence[tuple[int, int]],
    precision=None,
) -> jax.Array:
    """A stride-1 dense convolution (NHWC, HWIO) as one matmul: each row of it is the receptive
    field of `BAND_COLUMNS` neighbouring output pixels of one output row (kernel rows x
    `BAND_COLUMNS` + kernel width - 1 columns x input features), and the matrix it multiplies
    holds the kernel once per output pixel, shifted along that band. It computes
    (`BAND_COLUMNS` + kernel width - 1) / kernel width times the convolution's FLOPs, in a
    matmul with `BAND_COLUMNS` times its output features: the trade pays for convolutions too
    narrow for XLA:CPU's fast path, whose gradients are then the matmul's own."""
    kernel_height, kernel_width, in_features, out_features = rhs.shape
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], (1, 1), padding)
    (top, bottom), (left, right) = padding
    batch, height, width = lhs.shape[:3]
    out_height = height + top + bottom - kernel_height + 1
    out_width = width + left + right - kernel_width + 1
    bands = -(-out_width // BAND_COLUMNS)
    span = BAND_COLUMNS + kernel_width - 1
    extra = bands * BAND_COLUMNS - out_width  # columns that only the last band reaches
    padded = jnp.pad(lhs, ((0, 0), (top, bottom), (left, right + extra), (0, 0)))
    rows = jnp.stack([padded[:, i : i + out_height] for i in range(kernel_height)], axis=2)
    fields = jnp.stack(
        [rows[:, :, :, b * BAND_COLUMNS : b * BAND_COLUMNS + span] for b in range(bands)], axis=2
    )
    # shift[p, q, j] = 1 where field column p is kernel column j of output pixel q.
    shift = np.stack([np.eye(span, BAND_COLUMNS, -j) for j in range(kernel_width)], axis=-1)
    band = jnp.einsum("pqj,ijco->ipcqo", shift.astype(rhs.dtype), rhs)
    out = jnp.matmul(
        fields.reshape(-1, kernel_height * span * in_features),
        band.reshape(kernel_height * span * in_features, BAND_COLUMNS * out_features),
        precision=precision,
    )
    return out.reshape(batch, out_height, bands * BAND_COLUMNS, out_features)[:, :, :out_width]


# `tap_sum_conv` passes native convolutions' inputs through `stored_once`
# (`benchmarks.stored_inputs` times the step without it).
STORE_NATIVE_INPUTS = True


def stored_once(lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    """`lhs` divided by a one that XLA cannot fold away (built from `rhs`), so that XLA:CPU
    computes a native convolution's input once and stores it.

    XLA:CPU feeds a convolution's kernel gradient through a transposed copy of its input, with
    the batch axis innermost, and fuses the cheap elementwise chain that computes that input
    (BatchNorm, residual sum, ReLU) into the copy: every element of the copy then re-reads each
    input of the chain (up to ten in a ResNet block) with a stride of one image. A division is
    an expensive operation to XLA, which does not duplicate one into a second consumer, so the
    input is computed once (the forward convolution reads it anyway) and the copy reads that.
    Dividing by one is exact: the values are bit for bit those of `lhs`, and so are the
    gradients but for subnormal ones, which XLA's CPU kernels may flush to zero there as
    elsewhere.
    """
    entry = lax.stop_gradient(rhs).reshape(-1)[0]
    # True whatever the entry holds (a NaN is unequal to itself), yet no constant to XLA.
    one = ((entry == entry) | (entry != entry)).astype(lhs.dtype)
    return lhs / one


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
    - a stride-1 dense convolution with at most `BANDED_MAX_IN_FEATURES` input and
      `BANDED_MAX_OUT_FEATURES` output features (any padding): `banded_matmul_conv`, one matmul;
    - a stride-1 'SAME' depthwise convolution, and a dense one on a map smaller than its
      kernel: sums over kernel taps of shifted input views (times the tap's kernel row for a
      depthwise convolution, matmuls with it for a dense one).

    Each is the same convolution, so parameters and outputs do not change (up to float
    rounding). Every other convolution is `lax.conv_general_dilated` itself, its input behind
    `stored_once` (while `STORE_NATIVE_INPUTS`).
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
    undilated_stride_1 = set(window_strides) == {1} and set(dilations) <= {1}
    defaults = all(kwargs.get(key) is None for key in ("preferred_element_type", "out_sharding"))
    narrow = in_features <= BANDED_MAX_IN_FEATURES and out_features <= BANDED_MAX_OUT_FEATURES
    if narrow and groups == 1 and undilated_stride_1 and defaults:
        return banded_matmul_conv(lhs, rhs, padding, precision)
    depthwise = groups == in_features == out_features > 1 and kernel_in_features == 1
    dense_on_small_map = groups == 1 and (height < kernel_height or width < kernel_width)
    plain = padding == "SAME" and undilated_stride_1
    if not (plain and (depthwise or dense_on_small_map)):
        conv_input = stored_once(lhs, rhs) if STORE_NATIVE_INPUTS else lhs
        return lax.conv_general_dilated(conv_input, rhs, window_strides, padding, **kwargs)
    kernels = [rhs[i, j] for i in range(kernel_height) for j in range(kernel_width)]
    taps = list(zip(_shifted_views(lhs, kernel_height, kernel_width), kernels, strict=True))
    if depthwise:
        return sum(view * kernel[0] for view, kernel in taps)
    return sum(jnp.matmul(view, kernel, precision=precision) for view, kernel in taps)
