"""`--config.distributed=True` proven on one machine: two CPU processes on 127.0.0.1.

Each process holds one CPU device; together they form one mesh through JAX's coordinator and
gloo, exactly as hosts of a GPU cluster or TPU pod slice do. Their run must equal a
single-process run with the same global batch, only process 0 may write, and a resume must
work across both.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fake_data import write_idx_dataset
from tests.test_pipeline import REPO, run_cli

PREFIX = "lenet5_mnist"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_args(data_root: Path, workdir: Path, num_epochs: int) -> list[str]:
    return [
        "scripts.train",
        "--config=configs/default.py",
        f"--workdir={workdir}",
        f"--config.data_dir={data_root}",
        "--config.data_source=files",
        "--config.batch_size=16",
        f"--config.num_epochs={num_epochs}",
    ]


def train_on_two_processes(data_root: Path, workdir: Path, num_epochs: int) -> list[str]:
    """Runs both processes to the end; returns their stdouts."""
    port = free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", *train_args(data_root, workdir, num_epochs)]
            + ["--config.distributed=True"],
            cwd=REPO,
            env={
                **os.environ,
                "JAX_PLATFORMS": "cpu",
                "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                "JAX_NUM_PROCESSES": "2",
                "JAX_PROCESS_ID": str(index),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    return [stdout for stdout, _ in outputs]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root, "mnist")
    return root


def test_two_processes_train_like_one_and_resume_together(data_root, tmp_path):
    single = run_cli(*train_args(data_root, tmp_path / "single", 2), env={"JAX_PLATFORMS": "cpu"})
    assert single.returncode == 0, single.stderr
    expected = json.loads((tmp_path / "single" / f"{PREFIX}_results.json").read_text())

    workdir = tmp_path / "two"
    chief, worker = train_on_two_processes(data_root, workdir, 2)
    results = json.loads((workdir / f"{PREFIX}_results.json").read_text())
    assert results["environment"]["process_count"] == 2
    assert results["environment"]["device_count"] == 2
    # The same global batches, summed over two devices instead of one: equal up to the order
    # of float additions.
    np.testing.assert_allclose(
        results["history"]["train_loss"], expected["history"]["train_loss"], rtol=1e-5
    )
    assert results["confusion_matrix"] == expected["confusion_matrix"]
    np.testing.assert_allclose(results["test_loss"], expected["test_loss"], rtol=1e-5)
    assert "test accuracy" in chief and "test accuracy" not in worker  # process 0 reports

    train_on_two_processes(data_root, workdir, 3)
    resumed = json.loads((workdir / f"{PREFIX}_results.json").read_text())
    assert resumed["epochs"] == 3
    assert resumed["history"]["train_loss"][:2] == results["history"]["train_loss"]
    assert resumed["config_changes"] == [{"epoch": 3, "key": "num_epochs", "old": 2, "new": 3}]
