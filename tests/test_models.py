"""Every registered CNN: output shape and finite logits at 28x28x1 and 32x32x3, pinned parameter
counts, train/eval behaviour, seed determinism, and a few Adam steps that lower the loss; and the
CPU forms of convolution and pooling of `jax_models.cpu_forms` against XLA's native operations.

Compilation dominates the cost, so each (model, shape) is built once, batches hold 2 images,
the training check runs at 28x28x1 only, and its first step's train-mode logits double as the
train side of the train/eval comparison.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jax_models import MODELS, complexity, count_params, cpu_forms, create
from jax_models.cpu_forms import shifted_view_max_pool, tap_sum_conv
from jax_models.errors import UserError
from scripts.model_table import family_text, model_families
from trainers import xla_options

NUM_CLASSES = 10
SHAPES = ((28, 28, 1), (32, 32, 3))
REQUIRED = ("lenet5", "alexnet", "googlenet", "vgg16", "resnet18", "xception", "senet18")

# Regression pins: trainable parameters at 28x28x1 and at 32x32x3 with 10 classes, computed once
# from the code (see docs/models.md). A change here changes the architecture.
PARAMS = {
    "alexnet": (7_703_242, 7_706_442),
    "googlenet": (5_868_458, 5_871_914),
    "googlenet_s2": (5_868_458, 5_871_914),
    "lenet5": (61_706, 62_006),
    "resnet18": (11_172_810, 11_173_962),
    "resnet20": (272_186, 272_474),
    "resnet56": (855_482, 855_770),
    "se_resnet20": (274_559, 274_847),
    "senet18": (11_261_890, 11_263_042),
    "vgg11": (9_749_770, 9_750_922),
    "vgg11_bn": (9_752_522, 9_753_674),
    "vgg16": (15_243_978, 15_245_130),
    "vgg16_bn": (15_248_202, 15_249_354),
    "xception": (20_826_866, 20_827_442),
}


# The batches here are tiny, so XLA's compile time dominates; its cheapest optimisation level
# roughly halves it.
FAST_COMPILE = {"xla_backend_optimization_level": 0}
TRAIN_SHAPE = SHAPES[0]
TRAIN_STEPS = 3


@functools.cache
def built(name: str, shape: tuple[int, int, int]) -> nnx.Module:
    return create(name, num_classes=NUM_CLASSES, input_shape=shape, seed=0)


def images(shape: tuple[int, int, int], batch: int = 2) -> jax.Array:
    return jax.random.normal(jax.random.key(1), (batch, *shape), jnp.float32)


@functools.cache
def eval_logits(name: str, shape: tuple[int, int, int]) -> np.ndarray:
    graphdef, state = nnx.split(built(name, shape))

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def forward(state: nnx.State, x: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, state)
        model.eval()
        return model(x)

    return np.asarray(forward(state, images(shape)))


@functools.cache
def adam_run(name: str) -> tuple[list[float], np.ndarray]:
    """Losses of TRAIN_STEPS Adam steps on one fixed batch in train mode, and the train-mode
    logits of the first step (same seed-0 parameters and images as `eval_logits(name,
    TRAIN_SHAPE)`).

    Every step reuses the initial RNG state, so dropout draws the same masks each time and the
    loss is a deterministic function of the parameters: the check measures the optimisation,
    not dropout noise, which on 2 images can outweigh three steps of progress.
    """
    model = create(name, num_classes=NUM_CLASSES, input_shape=TRAIN_SHAPE, seed=0)
    model.train()
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    graphdef, rng_state, state = nnx.split((model, optimizer), nnx.RngState, ...)

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def step(rng_state: nnx.State, state: nnx.State, x: jax.Array, labels: jax.Array):
        model, optimizer = nnx.merge(graphdef, rng_state, state)

        def loss_fn(model: nnx.Module) -> tuple[jax.Array, jax.Array]:
            logits = model(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        return loss, logits, nnx.split((model, optimizer), nnx.RngState, ...)[2]

    x, labels = images(TRAIN_SHAPE), jnp.arange(2)
    losses, first_logits = [], None
    for _ in range(TRAIN_STEPS):
        loss, logits, state = step(rng_state, state, x, labels)
        losses.append(float(loss))
        first_logits = np.asarray(logits) if first_logits is None else first_logits
    return losses, first_logits


def has_dropout_or_batch_norm(model: nnx.Module) -> bool:
    return any(isinstance(m, nnx.Dropout | nnx.BatchNorm) for _, m in nnx.iter_modules(model))


def params_of(model: nnx.Module) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_registry_holds_the_seven_families_and_every_model_is_pinned():
    assert set(REQUIRED) <= set(MODELS)
    assert set(MODELS) == set(PARAMS)


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(UserError) as error:
        create("resnet1000", num_classes=NUM_CLASSES, input_shape=(32, 32, 3))
    assert all(name in str(error.value) for name in MODELS)


def test_every_model_is_documented_by_its_module():
    families = model_families()
    for name in MODELS:
        text = family_text(families[name])
        assert all(text[part] for part in ("paper", "kept", "adapted")), name


@pytest.mark.parametrize(
    "side, kernel, groups, stride, padding",
    [
        (2, 3, 1, 1, "SAME"),
        (4, 5, 1, 1, "SAME"),
        (1, 3, 1, 1, "SAME"),
        (5, 3, 1, 1, "SAME"),
        (5, 3, 4, 1, "SAME"),
        (2, 3, 4, 1, "SAME"),
        (5, 1, 1, 1, "SAME"),
        (7, 1, 1, 2, "SAME"),
        (8, 1, 1, 2, "VALID"),
        (5, 3, 1, 2, "SAME"),
    ],
)
def test_tap_sum_conv_is_the_same_convolution(side, kernel, groups, stride, padding):
    x = jax.random.normal(jax.random.key(0), (2, side, side + 1, 4))
    # 17 output features: too wide for the banded matmul, which the next test covers.
    k = jax.random.normal(jax.random.key(1), (kernel, kernel, 4 // groups, 4 if groups > 1 else 17))
    options = {"dimension_numbers": ("NHWC", "HWIO", "NHWC"), "feature_group_count": groups}
    strides = (stride, stride)

    def loss(conv, x, k):
        return jnp.sum(jnp.sin(conv(x, k, strides, padding, **options)))

    expected = jax.value_and_grad(functools.partial(loss, jax.lax.conv_general_dilated), (0, 1))(
        x, k
    )
    result = jax.value_and_grad(functools.partial(loss, tap_sum_conv), (0, 1))(x, k)
    for got, want in zip(jax.tree.leaves(result), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "shape, kernel, features, padding",
    [
        ((2, 32, 32, 3), (5, 5), 6, "VALID"),  # LeNet-5's C1 on CIFAR-10
        ((2, 28, 28, 1), (5, 5), 6, "SAME"),  # ... and on MNIST
        ((2, 14, 14, 6), (5, 5), 16, "VALID"),  # LeNet-5's C3
        ((2, 5, 9, 4), (3, 2), 16, ((1, 0), (2, 3))),
        ((2, 9, 11, 4), (3, 3), 5, "SAME_LOWER"),
        ((2, 2, 3, 4), (3, 3), 6, "SAME"),  # fewer output columns than one band
    ],
)
def test_narrow_convolutions_are_the_same_convolution_as_one_matmul(
    shape, kernel, features, padding
):
    x = jax.random.normal(jax.random.key(0), shape)
    fan_in = kernel[0] * kernel[1] * shape[-1]
    k = jax.random.normal(jax.random.key(1), (*kernel, shape[-1], features)) / fan_in**0.5
    options = {"dimension_numbers": ("NHWC", "HWIO", "NHWC")}

    def loss(conv, x, k):
        return jnp.sum(jnp.sin(conv(x, k, (1, 1), padding, **options)))

    expected = jax.value_and_grad(functools.partial(loss, jax.lax.conv_general_dilated), (0, 1))(
        x, k
    )
    result = jax.value_and_grad(functools.partial(loss, tap_sum_conv), (0, 1))(x, k)
    for got, want in zip(jax.tree.leaves(result), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    jaxpr = str(jax.make_jaxpr(jax.grad(functools.partial(loss, tap_sum_conv), (0, 1)))(x, k))
    assert "conv_general_dilated[" not in jaxpr
    # The matmul and its two gradients, the band built from the kernel and its transpose.
    assert jaxpr.count("dot_general[") == 5


@pytest.mark.parametrize(
    "in_features, out_features",
    [
        (cpu_forms.BANDED_MAX_IN_FEATURES + 1, cpu_forms.BANDED_MAX_OUT_FEATURES),
        (cpu_forms.BANDED_MAX_IN_FEATURES, cpu_forms.BANDED_MAX_OUT_FEATURES + 1),
    ],
)
def test_one_more_feature_keeps_the_native_convolution(in_features, out_features):
    x = jax.random.normal(jax.random.key(0), (2, 14, 14, in_features))
    k = jax.random.normal(jax.random.key(1), (5, 5, in_features, out_features))
    conv = functools.partial(
        tap_sum_conv,
        window_strides=(1, 1),
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    jaxpr = jax.make_jaxpr(conv)(x, k)
    assert "conv_general_dilated[" in str(jaxpr)


def test_stored_once_is_its_input_bit_for_bit():
    # Signed zeros, infinities, NaN and a subnormal survive, whatever the kernel holds; in the
    # gradient XLA may flush the subnormal to zero.
    x = jnp.array([1.5, -0.0, jnp.inf, -jnp.inf, jnp.nan, 3e-39, -2.0, 1 / 3])
    cotangent = x[::-1]
    normal = np.abs(np.asarray(cotangent)) != 3e-39
    for kernel_entry in (0.0, 1.0, jnp.nan, jnp.inf):
        kernel = jnp.full((3, 3, 1, 1), kernel_entry)
        stored, vjp = jax.vjp(jax.jit(cpu_forms.stored_once), x, kernel)
        x_grad, kernel_grad = (np.asarray(grad) for grad in vjp(cotangent))
        assert np.asarray(stored).tobytes() == np.asarray(x).tobytes()
        assert x_grad[normal].tobytes() == np.asarray(cotangent)[normal].tobytes()
        assert x_grad[~normal] in (0, 3e-39)
        assert not kernel_grad.any()


def test_the_kernel_gradient_of_a_native_convolution_reads_its_stored_input():
    # XLA:CPU feeds the kernel gradient a copy of the input with the batch axis innermost
    # (features, rows, columns, batch). Left to itself it fuses the elementwise chain that
    # computes the input (here a BatchNorm-like scale and shift, a residual sum and a ReLU)
    # into that copy, which then reads x, residual, scale and shift element by element;
    # `stored_once` makes the copy read the one stored input the forward convolution reads.
    keys = jax.random.split(jax.random.key(0), 5)
    x, residual = (jax.random.normal(key, (2, 6, 6, 8)) for key in keys[:2])
    scale, shift = (jax.random.normal(key, (8,)) for key in keys[2:4])
    kernel = jax.random.normal(keys[4], (3, 3, 8, 8))

    def loss(kernel, x, residual, scale, shift):
        h = jax.nn.relu(x * scale + shift + residual)
        options = {"dimension_numbers": ("NHWC", "HWIO", "NHWC")}
        return jnp.sum(jnp.sin(tap_sum_conv(h, kernel, (1, 1), "SAME", **options)))

    program = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(kernel, x, residual, scale, shift)
    text = program.compile(xla_options.CPU_COMPILER_OPTIONS).as_text()
    entry = text[text.index("\nENTRY") :]
    forward_input = re.search(r"convolution\((%[\w.-]+), %kernel", entry).group(1)
    batch_innermost_copies = re.findall(r"= f32\[8,6,6,2\]\{[^}]*\} fusion\(([^)]*)\)", entry)
    assert batch_innermost_copies == [forward_input]


def test_complexity_counts_the_model_not_the_cpu_forms():
    # LeNet-5's multiply-adds on 32x32x3 (C1, C3, three dense layers), two FLOPs each; XLA adds
    # biases, activations and pools. The banded matmuls the CPU runs multiply zeros as well
    # (1.8 times the count), which must not change the model's complexity.
    multiply_adds = 28 * 28 * 6 * 75 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    flops = complexity("lenet5", (32, 32, 3))["flops"]
    assert 2 * multiply_adds <= flops < 1.03 * 2 * multiply_adds


@pytest.mark.parametrize("side, window, stride", [(7, 3, 2), (8, 3, 2), (7, 2, 2), (4, 3, 1)])
def test_shifted_view_max_pool_matches_the_native_pooling(side, window, stride):
    x = jax.random.normal(jax.random.key(0), (2, side, side + 1, 3))
    expected = nnx.max_pool(x, (window, window), strides=(stride, stride), padding="SAME")
    np.testing.assert_array_equal(shifted_view_max_pool(x, window, stride), expected)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", MODELS)
def test_eval_logits_have_the_right_shape_and_are_finite(name, shape):
    logits = eval_logits(name, shape)
    assert logits.shape == (2, NUM_CLASSES)
    assert np.isfinite(logits).all()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_is_pinned(name, shape):
    assert count_params(built(name, shape)) == PARAMS[name][SHAPES.index(shape)]


@pytest.mark.parametrize("name", MODELS)
def test_no_two_modules_share_a_variable(name):
    # trainers.train jits its steps in nnx's tree mode, which refuses shared Variables: a model
    # sharing one (tied weights) would fail at its first step. As pytree leaves a shared
    # Variable counts twice; in nnx.state, once.
    model = nnx.eval_shape(lambda: create(name, num_classes=10, input_shape=(28, 28, 1)))
    assert len(jax.tree.leaves(model)) == len(jax.tree.leaves(nnx.state(model)))


@pytest.mark.parametrize("name", MODELS)
def test_a_few_adam_steps_on_a_fixed_batch_lower_the_loss(name):
    losses, train_logits = adam_run(name)
    assert train_logits.shape == (2, NUM_CLASSES)
    assert np.isfinite(train_logits).all() and np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", MODELS)
def test_train_and_eval_modes_differ_exactly_when_dropout_or_batch_norm_exist(name):
    _, train_logits = adam_run(name)
    modes_differ = not np.allclose(eval_logits(name, TRAIN_SHAPE), train_logits, atol=1e-6)
    assert modes_differ == has_dropout_or_batch_norm(built(name, TRAIN_SHAPE))


@pytest.mark.parametrize("name", MODELS)
def test_the_same_seed_gives_the_same_parameters(name):
    again = create(name, num_classes=NUM_CLASSES, input_shape=TRAIN_SHAPE, seed=0)
    other = create(name, num_classes=NUM_CLASSES, input_shape=TRAIN_SHAPE, seed=1)
    reference = params_of(built(name, TRAIN_SHAPE))
    assert all(np.array_equal(a, b) for a, b in zip(reference, params_of(again), strict=True))
    # Every randomly initialised array must follow the seed (constants such as zero biases
    # cannot), so no layer may draw from a generator of its own.
    for a, b in zip(reference, params_of(other), strict=True):
        assert np.array_equal(a, b) == (np.unique(a).size == 1)
