"""Forms of convolution and max-pooling that XLA's CPU backend runs faster than its native ones.

XLA:CPU differentiates `reduce_window` max-pooling through a slow `select_and_scatter`, feeds the
kernel gradient of a convolution through transposed copies of both operands (slow for a 1x1
convolution, and for any convolution whose input outgrows the cache), and runs depthwise
convolutions and convolutions on maps smaller than their kernel in a slow generic loop. The
functions here compute the same values (and gradients, up to float rounding) from slices,
matmuls and elementwise maxima, sums and products instead. They pay for it in activation
memory (every shifted view is kept for the backward pass) and would only slow down a GPU or
TPU, whose native kernels have no such gaps, so `jax_models.blocks` selects them through
`lax.platform_dependent` only where a program is lowered for the CPU. The measurements behind
each form are in docs/performance.md.
"""

import functools
import os
import platform
from collections.abc import Sequence
from pathlib import Path

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


CAPPED_BELOW_AVX512 = ("SSE4_2", "AVX", "AVX2")


def x86_kernels(
    cpuinfo: Path = Path("/proc/cpuinfo"), xla_flags: str | None = None, machine: str = ""
) -> str | None:
    """Which x86 kernels XLA's convolutions run on here: 'avx512' where the CPU's flags (Linux's
    /proc/cpuinfo) include avx512f and `--xla_cpu_max_isa` does not cap XLA below it (as
    `benchmarks.throughput --max-isa avx2` does), else 'avx2' (also where the flags cannot be
    read); None on a CPU that is not x86-64."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return None
    flags = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
    caps = {f"--XLA_CPU_MAX_ISA={isa}" for isa in CAPPED_BELOW_AVX512}
    capped = any(flag.upper() in caps for flag in flags.split())
    try:
        avx512 = "avx512f" in cpuinfo.read_text().split()
    except OSError:
        avx512 = False
    return "avx512" if avx512 and not capped else "avx2"


# A stride-1 'SAME' dense convolution whose input has at least this many bytes gets the kernel
# gradient of `tap_kernel_gradient_conv` (docs/performance.md). With AVX-512 kernels: from 16
# MiB, at batch 128 and CIFAR-10 shapes the 32x32 stages and widest 16x16 ones of ResNet-18,
# SENet-18, VGG-16 and GoogLeNet (5 to 10 % faster steps); smaller inputs, and batch 32, lost
# by it. YNNPACK's AVX2 kernels run XLA's kernel gradients far slower (ResNet-18's 32x32 one at
# batch 128: 6 GFLOP/s against 41), so there the taps start at 4 MiB. CPUs that are not x86
# keep the threshold measured first.
TAP_KERNEL_GRADIENT_MIN_BYTES_AVX2 = 4 * 2**20
TAP_KERNEL_GRADIENT_MIN_BYTES_OTHERWISE = 16 * 2**20
TAP_KERNEL_GRADIENT_MIN_BYTES = (
    TAP_KERNEL_GRADIENT_MIN_BYTES_AVX2
    if x86_kernels() == "avx2"
    else TAP_KERNEL_GRADIENT_MIN_BYTES_OTHERWISE
)


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


def _same_conv(lhs: jax.Array, rhs: jax.Array, precision) -> jax.Array:
    return lax.conv_general_dilated(
        lhs, rhs, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def tap_kernel_gradient_conv(lhs: jax.Array, rhs: jax.Array, precision=None) -> jax.Array:
    """A stride-1 'SAME' dense convolution (NHWC, HWIO), native in its forward pass and input
    gradient, whose kernel gradient is one matmul per kernel tap: the tap's shifted input
    view, as (channels, batch x positions), times the output gradient as (batch x positions,
    features). XLA:CPU's own kernel gradient is a convolution over the whole map fed by
    transposed copies of both operands, which costs most once they outgrow the cache."""
    return _same_conv(lhs, rhs, precision)


def _tap_kernel_gradient_forward(lhs, rhs, precision):
    return _same_conv(lhs, rhs, precision), (lhs, rhs)


def _tap_kernel_gradient_backward(precision, residuals, grad):
    lhs, rhs = residuals
    # The convolution is linear in its input: its transpose is XLA's own input gradient.
    transpose = jax.linear_transpose(lambda x: _same_conv(x, rhs, precision), lhs)
    (input_grad,) = transpose(grad)
    kernel_height, kernel_width = rhs.shape[:2]
    batch, height, width, in_features = lhs.shape
    padded = _same_padded(lhs, kernel_height, kernel_width)
    rows = grad.reshape(-1, grad.shape[-1])

    def tap(index: jax.Array) -> jax.Array:
        start = (0, index // kernel_width, index % kernel_width, 0)
        view = lax.dynamic_slice(padded, start, (batch, height, width, in_features))
        return jnp.matmul(view.reshape(-1, in_features).T, rows, precision=precision)

    # One tap at a time: unrolled, XLA:CPU would hold every tap's transposed view at once.
    kernel_grad = lax.map(tap, jnp.arange(kernel_height * kernel_width))
    return input_grad, kernel_grad.reshape(rhs.shape)


tap_kernel_gradient_conv.defvjp(_tap_kernel_gradient_forward, _tap_kernel_gradient_backward)


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


def tap_sum_conv(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    **kwargs,
) -> jax.Array:
    """`lax.conv_general_dilated` for `nnx.Conv` on NHWC maps, except for four forms that XLA's
    CPU backend runs slowly, computed here as matrix products or sums over kernel taps:

    - a 1x1 convolution (any stride, 'SAME' or 'VALID'): one matmul over the channel axis of the
      (strided) input, whose kernel gradient is then a matmul too;
    - a stride-1 dense convolution with at most `BANDED_MAX_IN_FEATURES` input and
      `BANDED_MAX_OUT_FEATURES` output features (any padding): `banded_matmul_conv`, one matmul;
    - a stride-1 'SAME' depthwise convolution, and a dense one on a map smaller than its
      kernel: sums over kernel taps of shifted input views (times the tap's kernel row for a
      depthwise convolution, matmuls with it for a dense one);
    - a stride-1 'SAME' dense convolution whose input has at least
      `TAP_KERNEL_GRADIENT_MIN_BYTES`: `tap_kernel_gradient_conv`, native but for its kernel
      gradient.

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
    undilated_stride_1 = set(window_strides) == {1} and set(dilations) <= {1}
    defaults = all(kwargs.get(key) is None for key in ("preferred_element_type", "out_sharding"))
    narrow = in_features <= BANDED_MAX_IN_FEATURES and out_features <= BANDED_MAX_OUT_FEATURES
    if narrow and groups == 1 and undilated_stride_1 and defaults:
        return banded_matmul_conv(lhs, rhs, padding, precision)
    depthwise = groups == in_features == out_features > 1 and kernel_in_features == 1
    dense_on_small_map = groups == 1 and (height < kernel_height or width < kernel_width)
    plain = padding == "SAME" and undilated_stride_1
    large = lhs.size * lhs.dtype.itemsize >= TAP_KERNEL_GRADIENT_MIN_BYTES
    if plain and groups == 1 and not dense_on_small_map and defaults and large:
        return tap_kernel_gradient_conv(lhs, rhs, precision)
    if not (plain and (depthwise or dense_on_small_map)):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)
    kernels = [rhs[i, j] for i in range(kernel_height) for j in range(kernel_width)]
    taps = list(zip(_shifted_views(lhs, kernel_height, kernel_width), kernels, strict=True))
    if depthwise:
        return sum(view * kernel[0] for view, kernel in taps)
    return sum(jnp.matmul(view, kernel, precision=precision) for view, kernel in taps)
