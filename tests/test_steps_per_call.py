"""Several training steps per jitted call (`config.steps_per_call`) train exactly the steps of
one call per step: same parameters, same results file, the epoch's last short group included."""

import json
import re
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from jax_models.errors import UserError
from tests.fake_data import write_idx_dataset
from tests.test_pipeline import run_cli, strip_timing, tiny_config
from trainers import train as train_lib
from trainers.run_identity import check_resume
from trainers.settings import check_classification_settings, parse_steps_per_call

STEPS = 13  # tiny_config on the fake MNIST: 216 training examples in batches of 16


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root, "mnist")
    return root


def leaves(tree) -> list[np.ndarray]:
    def host(leaf):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        return np.asarray(leaf)

    return [host(leaf) for leaf in jax.tree.leaves(tree)]


def train(data_root: Path, workdir: Path, monkeypatch, **overrides) -> tuple[dict, dict]:
    """A tiny run's results file, and its final model and optimizer state and throughput
    counts (read as training ends, before the best checkpoint is restored for the test set)."""
    final = {}
    real_final_results = train_lib.final_results

    def recording(run, history, throughput, *args):
        final["state"] = leaves(nnx.state((run.model, run.optimizer)))
        final["throughput"] = dict(throughput)
        return real_final_results(run, history, throughput, *args)

    monkeypatch.setattr(train_lib, "final_results", recording)
    train_lib.train_and_evaluate(tiny_config(data_root, **overrides), str(workdir))
    results = json.loads((workdir / "lenet5_mnist_results.json").read_text())
    return results, final


def without_steps_per_call(results: dict) -> dict:
    stripped = strip_timing(results)
    stripped["config"] = {k: v for k, v in results["config"].items() if k != "steps_per_call"}
    return stripped


@pytest.fixture(scope="module")
def one_step_per_call(data_root, tmp_path_factory) -> tuple[dict, dict]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return train(
            data_root, tmp_path_factory.mktemp("k1"), monkeypatch, num_epochs=2, steps_per_call="1"
        )


@pytest.mark.parametrize("per_call", ["4", "5"])  # 13 = 3 x 4 + 1 = 2 x 5 + 3
def test_several_steps_per_call_train_bitwise_like_one(
    data_root, tmp_path, monkeypatch, capfd, one_step_per_call, per_call
):
    expected_results, expected = one_step_per_call
    results, final = train(data_root, tmp_path, monkeypatch, num_epochs=2, steps_per_call=per_call)
    assert results["config"]["steps_per_call"] == per_call
    assert without_steps_per_call(results) == without_steps_per_call(expected_results)
    assert len(final["state"]) == len(expected["state"])
    for got, want in zip(final["state"], expected["state"], strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    # Throughput leaves out the first call of each step count, which compiles.
    groups = train_lib.step_groups(STEPS, int(per_call))
    assert sum(groups) == STEPS
    untimed = groups[0] + (groups[-1] if groups[-1] != groups[0] else 0)
    assert final["throughput"]["images"] == 2 * (STEPS - untimed) * 16
    assert expected["throughput"]["images"] == 2 * (STEPS - 1) * 16
    assert f"{STEPS}/{STEPS}" in capfd.readouterr().err  # the progress bar counts steps


def test_rolled_loop_trains_the_same_steps(data_root, tmp_path, monkeypatch, one_step_per_call):
    """The loop accelerators run, on CPU: the same batches in the same order, rounded apart
    only by XLA:CPU's slower convolutions inside loop bodies."""
    monkeypatch.setattr(train_lib, "unrolls_steps", lambda: False)
    jax.clear_caches()  # no unrolled program of 6 steps may be reused
    results, final = train(data_root, tmp_path, monkeypatch, num_epochs=2, steps_per_call="6")
    expected_results, expected = one_step_per_call
    np.testing.assert_allclose(
        results["history"]["train_loss"], expected_results["history"]["train_loss"], rtol=1e-5
    )
    for got, want in zip(final["state"], expected["state"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


def test_step_groups_end_with_the_remainder():
    assert train_lib.step_groups(13, 1) == [1] * 13
    assert train_lib.step_groups(13, 4) == [4, 4, 4, 1]
    assert train_lib.step_groups(13, 5) == [5, 5, 3]
    assert train_lib.step_groups(12, 4) == [4, 4, 4]
    assert train_lib.step_groups(3, 8) == [3]
    assert train_lib.first_calls_steps(13, 1) == 1
    assert train_lib.first_calls_steps(13, 5) == 8
    assert train_lib.first_calls_steps(12, 4) == 4
    assert train_lib.first_calls_steps(3, 8) == 3


def test_auto_is_one_step_on_cpu_and_more_on_accelerators(monkeypatch):
    config = tiny_config(Path("unused"))
    assert config.steps_per_call == "auto"
    assert jax.default_backend() == "cpu"
    assert train_lib.resolve_steps_per_call(config) == 1
    monkeypatch.setattr(train_lib.jax, "default_backend", lambda: "gpu")
    assert train_lib.resolve_steps_per_call(config) == train_lib.ACCELERATOR_STEPS_PER_CALL > 1
    config.steps_per_call = "3"  # --config.steps_per_call=3 arrives as a string
    assert train_lib.resolve_steps_per_call(config) == 3


@pytest.mark.parametrize("value", ["auto", "1", "16", 4])
def test_good_steps_per_call(value):
    # A fresh ConfigDict, so the value may have another type than the default's (4).
    config = ml_collections.ConfigDict(
        {**tiny_config(Path("unused")).to_dict(), "steps_per_call": value}
    )
    check_classification_settings(config)
    assert parse_steps_per_call(value) == ("auto" if value == "auto" else int(value))


@pytest.mark.parametrize("value", ["0", "-2", "abc", "", "2.5", "Auto", 0, -1, 2.0, True, None])
def test_bad_steps_per_call_is_refused_before_data_loading(tmp_path, monkeypatch, value):
    def loaded(*args, **kwargs):
        raise AssertionError("data loaded before the settings were checked")

    monkeypatch.setattr(train_lib, "load_dataset", loaded)
    config = ml_collections.ConfigDict({**tiny_config(tmp_path).to_dict(), "steps_per_call": value})
    message = f"steps_per_call must be auto or a positive integer, got {value!r}"
    with pytest.raises(UserError, match=re.escape(message)):
        train_lib.train_and_evaluate(config, str(tmp_path / "run"))
    with pytest.raises(ValueError):
        parse_steps_per_call(value)


def test_a_resume_may_change_steps_per_call(tmp_path):
    old = tiny_config(tmp_path)
    new = tiny_config(tmp_path, steps_per_call="8")
    changes = check_resume(old.to_dict(), new, trained_epochs=1, workdir=str(tmp_path))
    assert changes == [{"epoch": 2, "key": "steps_per_call", "old": "auto", "new": "8"}]


def test_cli_flag_on_two_devices(data_root, tmp_path):
    """The flag arrives as a string; the loop's batches are sharded over two devices."""
    flags = [
        "--config=configs/default.py",
        f"--config.data_dir={data_root}",
        "--config.data_source=files",
        "--config.num_epochs=1",
        "--config.batch_size=16",
        "--config.compilation_cache_dir=",
    ]
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    results = {}
    for per_call in ("1", "5"):
        workdir = tmp_path / per_call
        done = run_cli(
            "scripts.train",
            *flags,
            f"--workdir={workdir}",
            f"--config.steps_per_call={per_call}",
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        results[per_call] = json.loads((workdir / "lenet5_mnist_results.json").read_text())
    assert results["5"]["environment"]["device_count"] == 2
    assert results["5"]["config"]["steps_per_call"] == "5"
    assert without_steps_per_call(results["5"]) == without_steps_per_call(results["1"])
