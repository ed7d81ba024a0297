"""The same model code runs XLA's native convolutions and max-pooling wherever a program is
lowered for an accelerator, and the CPU forms of `jax_models.cpu_forms` only where it is lowered
for the CPU; both compute the same values and gradients.

No GPU is needed: JAX lowers a program for CUDA on a CPU-only machine. Each registered model's
eval-mode forward pass (in float32) and training step (loss, gradients, an Adam update; in
float64, see `train_step`) is exported for `cuda` and lowered for `cpu`, and the forms are
counted in the StableHLO text. The CUDA training step, run on the CPU with the export's
platform check disabled, must then give the CPU program's loss, logits and gradients. One image
shape and batches of 2 keep tracing and compiling affordable; pytest runs all the tests of one
model before the next (a module-scoped parametrized fixture), so each is built once.
"""

import dataclasses
import functools
import re
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jax_models import MODELS, create

NUM_CLASSES = 10
SHAPE = (28, 28, 1)
BATCH = 2
FAST_COMPILE = {"xla_backend_optimization_level": 0}

# `blocks.max_pool` calls in one forward pass.
POOLS = {
    "alexnet": 3,
    "googlenet": 11,
    "googlenet_s2": 12,
    "lenet5": 2,
    "resnet18": 0,
    "resnet20": 0,
    "resnet56": 0,
    "se_resnet20": 0,
    "senet18": 0,
    "vgg11": 5,
    "vgg11_bn": 5,
    "vgg16": 5,
    "vgg16_bn": 5,
    "xception": 4,
}

# The eval-mode forward pass lowered for the CPU before the forms became platform-dependent
# (when `blocks` applied them everywhere), counted once: native convolutions, matmuls on
# feature maps (1x1 convolutions, taps of dense tap sums) and shrinking slices (shifted views,
# strided inputs of 1x1 convolutions). The CPU program must keep exactly these forms. Counted
# again when convolutions of at most 6 to 16 features became banded matmuls (LeNet-5's two, the
# 3x3 stems of ResNet-20, ResNet-56 and SE-ResNet-20): each is one native convolution fewer,
# one more matmul (the band built from the rank-4 kernel) and more slices (its input field's
# rows and columns). Counted again when Xception's 34 pointwise convolutions became native on
# every platform (`blocks.SeparableConv`): 34 native convolutions more, 34 matmuls fewer.
# Counted again when `cpu_forms.tap_sum_conv` put its native convolutions' inputs behind
# `stored_once`: one slice more for each (the kernel entry its one is built from; Xception's
# pointwise convolutions are not among them).
CPU_FORWARD = {
    "alexnet": (5, 0, 23),
    "googlenet": (19, 36, 85),
    "googlenet_s2": (17, 86, 189),
    "lenet5": (0, 2, 29),
    "resnet18": (17, 3, 20),
    "resnet20": (18, 3, 30),
    "resnet56": (54, 3, 66),
    "se_resnet20": (18, 3, 30),
    "senet18": (17, 3, 20),
    "vgg11": (6, 18, 62),
    "vgg11_bn": (6, 18, 62),
    "vgg16": (10, 27, 84),
    "vgg16_bn": (10, 27, 84),
    "xception": (36, 4, 642),
}


SLICE = re.compile(r"stablehlo\.slice [^\n]*: \((tensor<[^>]*>)\) -> (tensor<[^>]*>)")


@dataclasses.dataclass(frozen=True)
class Forms:
    """Counts of the operations that tell the native forms from the CPU ones in StableHLO."""

    convolutions: int
    grouped_convolutions: int  # feature_group_count > 1: native depthwise convolutions
    feature_map_matmuls: int  # dot_general on a rank-4 operand: 1x1 convolutions, tap sums
    slices: int  # shrinking slices: shifted views of tap sums and pools, strided 1x1 inputs,
    # the kernel entry of `stored_once`
    reduce_windows: int  # native pooling
    select_and_scatters: int  # native pooling's gradient

    @classmethod
    def of(cls, stablehlo: str) -> "Forms":
        return cls(
            convolutions=len(re.findall(r"stablehlo\.convolution\(", stablehlo)),
            grouped_convolutions=len(re.findall(r"feature_group_count = (?!1 :)\d+", stablehlo)),
            feature_map_matmuls=len(
                re.findall(r"stablehlo\.dot_general [^\n]*: \(tensor<\d+x\d+x\d+x\d+x", stablehlo)
            ),
            slices=sum(a != b for a, b in SLICE.findall(stablehlo)),
            reduce_windows=stablehlo.count("stablehlo.reduce_window"),
            select_and_scatters=stablehlo.count("stablehlo.select_and_scatter"),
        )


@dataclasses.dataclass(frozen=True)
class Program:
    """A jitted function of one model, the arguments it is lowered for, and its lowerings."""

    function: Callable
    args: tuple

    @functools.cached_property
    def cpu(self) -> jax.stages.Lowered:
        return self.function.trace(*self.args).lower()

    @functools.cached_property
    def cuda(self) -> jax.export.Exported:
        """The program exported for CUDA, allowed to run on the CPU for the numerical check."""
        export = jax.export.export(
            self.function,
            platforms=("cuda",),
            disabled_checks=[jax.export.DisabledSafetyCheck.platform()],
        )
        return export(*self.args)


@dataclasses.dataclass(frozen=True)
class Built:
    """A model split into graph and state, and its convolution layers."""

    graphdef: nnx.GraphDef
    state: nnx.State
    convolutions: list[nnx.Conv]


@pytest.fixture(scope="module", params=MODELS)
def name(request: pytest.FixtureRequest) -> str:
    """One registered model at a time: pytest runs every test below for it before the next, so
    its programs are built once and dropped before the next model's."""
    return request.param


@pytest.fixture(scope="module")
def built(name: str) -> Built:
    model = create(name, num_classes=NUM_CLASSES, input_shape=SHAPE)
    convs = [module for _, module in nnx.iter_modules(model) if isinstance(module, nnx.Conv)]
    return Built(*nnx.split(model), convs)


def images(dtype: jnp.dtype = jnp.float32) -> jax.Array:
    return jax.random.normal(jax.random.key(1), (BATCH, *SHAPE), dtype)


@pytest.fixture(scope="module")
def forward(built: Built) -> Program:
    """The eval-mode forward pass, in float32."""

    @jax.jit
    def run(state: nnx.State, x: jax.Array) -> jax.Array:
        model = nnx.merge(built.graphdef, state)
        model.eval()
        return model(x)

    return Program(run, (built.state, images()))


@pytest.fixture(scope="module")
def train_step(built: Built) -> Program:
    """Train mode (dropout, batch statistics), softmax cross-entropy and one Adam update, in
    float64 (to be lowered and run under `jax.enable_x64`); returns the loss, logits and
    gradients too, so that both forms can be compared before Adam normalises the gradients.

    In float32, rounding differences between the forms flip near-ties of max-pools, which sends
    a few positions' gradient elsewhere: up to 13% of a gradient's largest entry in GoogLeNet,
    as much as between float32 and float64 in either form. In float64 the forms agree to 1e-13.
    """
    adam = optax.adam(1e-3)

    @jax.jit
    def step(state: nnx.State, adam_state: optax.OptState, x: jax.Array, labels: jax.Array):
        model = nnx.merge(built.graphdef, state)
        model.train()

        def loss_fn(model: nnx.Module) -> tuple[jax.Array, jax.Array]:
            logits = model(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        params = nnx.state(model, nnx.Param)
        updates, adam_state = adam.update(grads, adam_state, params)
        nnx.update(model, optax.apply_updates(params, updates))
        return loss, logits, grads, nnx.state(model), adam_state

    @jax.jit  # one compilation instead of one per array shape
    def start(state: nnx.State) -> tuple[nnx.State, optax.OptState]:
        state = jax.tree.map(
            lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, state
        )
        return state, adam.init(nnx.state(nnx.merge(built.graphdef, state), nnx.Param))

    with jax.enable_x64(True):
        state, adam_state = start(built.state)
        return Program(step, (state, adam_state, images(jnp.float64), jnp.arange(BATCH)))


def test_the_cuda_forward_pass_runs_every_convolution_and_pool_natively(
    name: str, built: Built, forward: Program
):
    forms = Forms.of(forward.cuda.mlir_module())
    assert forms.convolutions == len(built.convolutions)
    assert forms.grouped_convolutions == sum(
        conv.feature_group_count > 1 for conv in built.convolutions
    )
    assert forms.reduce_windows == POOLS[name]
    assert forms.feature_map_matmuls == forms.slices == 0


def test_the_cuda_training_step_runs_every_convolution_and_pool_natively(
    name: str, built: Built, train_step: Program
):
    with jax.enable_x64(True):
        forms = Forms.of(train_step.cuda.mlir_module())
    # Each convolution, its kernel gradient and its input gradient (but the image's).
    assert forms.convolutions == 3 * len(built.convolutions) - 1
    assert forms.reduce_windows == forms.select_and_scatters == POOLS[name]
    assert forms.feature_map_matmuls == 0


def test_the_cpu_lowering_keeps_the_cpu_forms(name: str, forward: Program, train_step: Program):
    forward_forms = Forms.of(forward.cpu.as_text())
    with jax.enable_x64(True):
        step_forms = Forms.of(train_step.cpu.as_text())
    assert (
        forward_forms.convolutions,
        forward_forms.feature_map_matmuls,
        forward_forms.slices,
    ) == CPU_FORWARD[name]
    for forms in (forward_forms, step_forms):
        assert forms.grouped_convolutions == forms.reduce_windows == 0
        assert forms.select_and_scatters == 0


# Models that hold every CPU form between them (pooling, 1x1 matmuls, depthwise and small-map
# tap sums): the numerics below compile each model's step twice, the slowest test of the file.
NUMERICS_MODELS = ("lenet5", "resnet20", "vgg11", "googlenet_s2", "xception")


def test_the_native_forms_compute_the_cpu_forms_values_and_gradients(
    name: str, train_step: Program
):
    if name not in NUMERICS_MODELS:
        pytest.skip(f"every form is compared on {', '.join(NUMERICS_MODELS)}")
    with jax.enable_x64(True):
        both = jax.jit(
            lambda *args: (train_step.function(*args)[:3], train_step.cuda.call(*args)[:3]),
            compiler_options=FAST_COMPILE,
        )
        cpu, native = both(*train_step.args)
    for got, want in zip(jax.tree.leaves(native), jax.tree.leaves(cpu), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(want).max())
