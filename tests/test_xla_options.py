"""The study's steps compile on the CPU with YNNPACK's convolutions off, and only there."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jax_models
from benchmarks import conv_routing, step_variants
from trainers import train as train_lib
from trainers import xla_options
from trainers.metrics import TrainMetrics

SHAPE = (8, 8, 1)
BATCH = 4


def test_options_only_on_the_cpu_and_only_where_the_user_set_none():
    assert xla_options.compiler_options("cpu", xla_flags="") == xla_options.CPU_COMPILER_OPTIONS
    assert xla_options.compiler_options("gpu", xla_flags="") == {}
    assert xla_options.compiler_options("tpu", xla_flags="") == {}
    mine = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
    assert xla_options.compiler_options("cpu", xla_flags=mine) == {}
    other = "--xla_cpu_max_isa=AVX2"
    assert xla_options.compiler_options("cpu", xla_flags=other) == xla_options.CPU_COMPILER_OPTIONS


def test_the_platform_comes_from_a_static_mesh():
    with pytest.raises(ValueError, match="mesh"):
        xla_options.jit(lambda x, *, mesh: x, static_argnames=())


class Run:
    """A ResNet-20 (16, 32 and 64 features: YNNPACK takes the wider convolutions by default),
    its optimizer and a few batches, replicated on the CPU mesh."""

    def __init__(self):
        self.mesh = train_lib.make_mesh()
        self.model = jax_models.create("resnet20", num_classes=10, input_shape=SHAPE)
        self.optimizer = train_lib.replicated_adam(self.model, 1e-3, self.mesh)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (2 * BATCH, *SHAPE), dtype=np.uint8)
        labels = rng.integers(0, 10, 2 * BATCH).astype(np.int32)
        order = np.arange(2 * BATCH, dtype=np.int32)
        self.data = [train_lib.put_replicated(a, self.mesh) for a in (images, labels, order)]

    def step(self, train_step, start: int = 0, batch_size: int = BATCH) -> TrainMetrics:
        metrics = train_lib.replicate(TrainMetrics.empty(), self.mesh)
        return train_step(
            self.model,
            self.optimizer,
            metrics,
            *self.data,
            jnp.int32(start),
            batch_size=batch_size,
            mesh=self.mesh,
        )

    def params(self) -> list[np.ndarray]:
        return [np.asarray(x) for x in jax.tree.leaves(nnx.state(self.model, nnx.Param))]


def routes(train_step, run: Run) -> set[str]:
    metrics = train_lib.replicate(TrainMetrics.empty(), run.mesh)
    executable = train_step.executable(
        run.model, run.optimizer, metrics, *run.data, jnp.int32(0), batch_size=BATCH, mesh=run.mesh
    )
    return {conv.route for conv in conv_routing.convolutions(executable.as_text())}


def test_the_cpu_step_runs_its_convolutions_in_eigen_where_xla_would_use_ynnpack():
    run = Run()
    assert "YNNPACK" in routes(step_variants.jitted_step(options=lambda platform: {}), run)
    ours = routes(train_lib.train_step, run)
    assert "Eigen" in ours and "YNNPACK" not in ours


# XLA's own default fusion types, written out: the program `nnx.jit` compiles, through the
# ahead-of-time path.
XLA_DEFAULT = {
    xla_options.YNN_FUSION_FLAG: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,"
    "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,LIBRARY_FUSION_TYPE_REDUCE"
}


def test_one_executable_per_signature_and_the_modules_updated_as_by_nnx_jit():
    compiled, plain = Run(), Run()
    step = step_variants.jitted_step(options=lambda platform: XLA_DEFAULT)
    without = step_variants.jitted_step(options=lambda platform: {})
    for start in (0, BATCH):  # the same signature twice
        ours, theirs = compiled.step(step, start), plain.step(without, start)
    assert len(step.executables) == 1 and not without.executables
    assert float(ours.compute()["loss"]) == float(theirs.compute()["loss"])
    initial = Run().params()
    for a, b in zip(compiled.params(), plain.params(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(compiled.params(), initial, strict=True))
    compiled.step(step, 0, batch_size=2)  # a new static argument: a second program
    assert len(step.executables) == 2


def test_eigen_convolutions_train_as_ynnpacks_to_float_rounding():
    eigen, ynnpack = Run(), Run()
    ours = eigen.step(train_lib.train_step)
    theirs = ynnpack.step(step_variants.jitted_step(options=lambda platform: {}))
    assert float(ours.compute()["loss"]) == pytest.approx(float(theirs.compute()["loss"]), rel=1e-5)
