"""XLA compiler options for the study's jitted steps, chosen by the platform they run on.

On the CPU, XLA hands convolutions to YNNPACK by default. The YNNPACK in jaxlib 0.10 splits a
convolution's work only over tiles of its output channels and output columns (a tile holds up
to 64 channels), never over the batch or the rows, so a convolution with 64 output channels on
a 16- or 32-pixel-wide map is a single task on a single core while the other idles (measured
in docs/performance.md, "The convolutions on one core": a 3x3 convolution 64 to 64 features at
batch 128 runs at 1.0 core). Eigen's convolutions, which XLA uses for every convolution YNNPACK
does not take, split over the output pixels and keep both cores busy. So on the CPU the
study's steps are compiled with YNNPACK's convolutions switched off, so that Eigen runs every
convolution YNNPACK would have taken, and its other fusions (dots and reductions, XLA's
defaults) kept. Accelerators get no options.
"""

import functools
import os
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import jax
from flax import nnx
from jax.sharding import Mesh

YNN_FUSION_FLAG = "xla_cpu_experimental_ynn_fusion_type"
# XLA's default YNNPACK fusion types without LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION.
CPU_COMPILER_OPTIONS = {
    YNN_FUSION_FLAG: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}


def compiler_options(platform: str, xla_flags: str | None = None) -> dict[str, str]:
    """The options the study's steps compile with on `platform`: none off the CPU, and none
    where XLA_FLAGS (`xla_flags` if given) already sets YNNPACK's fusion types, so that a
    user's own choice of flags stays in force."""
    flags = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
    if platform != "cpu" or YNN_FUSION_FLAG in flags:
        return {}
    return dict(CPU_COMPILER_OPTIONS)


def mesh_platform(mesh: Mesh) -> str:
    return mesh.devices.flat[0].platform


class CompiledForPlatform:
    """An `nnx.jit` function that compiles with the `options` (by default `compiler_options`) of
    the platform of its `mesh` argument.

    `nnx.jit` passes no compiler options to `jax.jit`, but its lowered stages compile with
    them; so where the platform has options, each new signature (static arguments, argument
    tree and each array's type and sharding, as `jax.jit` tells calls apart) is traced, lowered
    and compiled ahead of time once and its executable reused. Where it has none, calls go to
    the `nnx.jit` function itself. Either way the modules passed in are updated in place, as
    by `nnx.jit`.
    """

    def __init__(
        self,
        jitted: Any,
        static_argnames: Iterable[str],
        options: Callable[[str], dict[str, str]] = compiler_options,
    ):
        functools.update_wrapper(self, jitted.fun, updated=())
        self.jitted = jitted
        self.static_argnames = frozenset(static_argnames)
        self.options = options
        self.executables: dict[Hashable, Callable] = {}

    @property
    def fun(self) -> Callable:
        """The Python function under the jit."""
        return self.jitted.fun

    def trace(self, *args, **kwargs) -> Any:
        """The `nnx.jit` function's trace for these arguments (a flax `SimpleTraced`)."""
        return self.jitted.trace(*args, **kwargs)

    def executable(self, *args, traced: Any = None, **kwargs) -> Any:
        """The compiled step a call with these arguments runs (a flax `SimpleCompiled`),
        compiled now if it is new to this function; where the platform has no options, the
        `nnx.jit` function's program, compiled apart from its own cache. `traced`, this
        function's `trace` of the same arguments where the caller has one, is not traced
        again."""
        options = self.options(mesh_platform(kwargs["mesh"]))
        if not options:
            return (traced or self.trace(*args, **kwargs)).lower().compile()
        return self._cached(options, args, kwargs, self._dynamic(kwargs), traced)

    def __call__(self, *args, **kwargs) -> Any:
        options = self.options(mesh_platform(kwargs["mesh"]))
        if not options:
            return self.jitted(*args, **kwargs)
        dynamic = self._dynamic(kwargs)
        return self._cached(options, args, kwargs, dynamic)(*args, **dynamic)

    def _dynamic(self, kwargs: dict) -> dict:
        return {k: v for k, v in kwargs.items() if k not in self.static_argnames}

    def _cached(
        self, options: dict[str, str], args: tuple, kwargs: dict, dynamic: dict, traced: Any = None
    ) -> Any:
        """The executable for this signature: static arguments (hashable, as `jax.jit` needs
        them), the tree of the others and each array's type (weak type included) and sharding.
        JAX's configuration (x64, default matmul precision) is not part of it: the study's
        steps never change it between calls."""
        static = tuple(sorted((k, v) for k, v in kwargs.items() if k in self.static_argnames))
        leaves, tree = jax.tree.flatten((args, dynamic))
        key = (static, tree, tuple(_signature(leaf) for leaf in leaves))
        if key not in self.executables:
            traced = traced or self.trace(*args, **kwargs)
            self.executables[key] = traced.lower().compile(options)
        return self.executables[key]


def jit(
    fun: Callable,
    *,
    static_argnames: Iterable[str],
    options: Callable[[str], dict[str, str]] = compiler_options,
    **jit_kwargs,
) -> CompiledForPlatform:
    """`nnx.jit(fun, ...)` compiled with the `options` of its platform; `fun` takes `mesh` as a
    keyword argument, among `static_argnames`."""
    static_argnames = tuple(static_argnames)
    if "mesh" not in static_argnames:
        raise ValueError("the platform is that of the `mesh` argument, which must be static")
    jitted = nnx.jit(fun, static_argnames=static_argnames, **jit_kwargs)
    return CompiledForPlatform(jitted, static_argnames, options)


def _signature(leaf: Any) -> Hashable:
    """What tells one call's array apart from another's for `jax.jit`."""
    if isinstance(leaf, jax.Array):
        return (jax.typeof(leaf), leaf.sharding)
    return (type(leaf), getattr(leaf, "shape", None), getattr(leaf, "dtype", None))
