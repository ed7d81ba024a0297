"""scripts.train ends with its verdict; rerun on a finished workdir, it just says so."""

import json
import re
from pathlib import Path

import pytest

from configs import default, seq2seq
from tests.fake_data import write_idx_dataset
from tests.test_pipeline import run_cli
from trainers.run_files import RunFiles, finished_results, run_files
from trainers.summary import format_duration, format_summary

CLASSIFIER = {
    "model": "lenet5",
    "dataset": "mnist",
    "test_accuracy": 0.98667,
    "f1": 0.98661,
    "test_loss": 0.04123,
    "best_epoch": 5,
}


def test_summary_of_a_classifier_run():
    files = run_files(default.get_config(), Path("runs/lenet5_mnist"))
    assert format_summary(CLASSIFIER, files, 134.4) == (
        "lenet5 on mnist: test accuracy 98.67 %, macro F1 98.66 %, test loss 0.0412 "
        "(checkpoint of epoch 5, best on validation)\n"
        "wall time 2 min 14 s\n"
        "results     runs/lenet5_mnist/lenet5_mnist_results.json\n"
        "curves      runs/lenet5_mnist/lenet5_mnist_curves.png\n"
        "checkpoint  runs/lenet5_mnist/lenet5_mnist_model/"
    )


@pytest.mark.parametrize("use_attention", [True, False])
def test_summary_of_a_seq2seq_run(use_attention):
    config = seq2seq.get_config()
    config.use_attention = use_attention
    results = {
        "task": "seq2seq",
        "use_attention": use_attention,
        "seq_len": 10,
        "test_token_accuracy": 0.9912,
        "test_sequence_accuracy": 0.954,
        "test_loss": 0.03118,
        "best_epoch": 8,
    }
    lines = format_summary(results, run_files(config, Path("w")), 3.14).splitlines()
    variant = "attention" if use_attention else "no attention"
    assert lines[0] == (
        f"seq2seq reversal ({variant}, lists of 10): greedy token accuracy 99.12 %, "
        "exact match 95.40 %, test loss 0.0312 (checkpoint of epoch 8, best on validation)"
    )
    assert lines[1] == "wall time 3.1 s"
    variable = {**results, "seq_len": 20, "config": {"min_seq_len": 1}}
    assert f"({variant}, lists of 1 to 20)" in format_summary(
        variable, run_files(config, Path("w")), 1
    )
    expected = ["results     w/seq2seq_results.json", "curves      w/seq2seq_loss.png"]
    expected += ["attention   w/seq2seq_attention.png"] * use_attention
    assert lines[2:] == [*expected, "checkpoint  w/seq2seq_model/"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.0 s"), (9.94, "9.9 s"), (59.4, "59 s"), (59.6, "1 min 0 s"), (3725, "1 h 02 min")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# Real runs through the command line, each trained once and then rerun.

# absl's INFO lines: `I1128 05:12:21.259691 140085364251520 train.py:20] message`.
INFO_LINE = re.compile(r"^I\d{4} [\d:.]+ +\d+ ([\w.]+):\d+\] ", re.MULTILINE)


def assert_only_the_runs_own_info_lines(stderr: str) -> None:
    """No library chatter: JAX's backend probing, matplotlib's font cache, orbax's saves."""
    assert "Unable to initialize backend" not in stderr
    assert "fontManager" not in stderr
    assert set(INFO_LINE.findall(stderr)) <= {"train.py", "run_files.py"}, stderr


def summary_lines(stdout: str) -> list[str]:
    """The summary, which ends stdout: one verdict, the wall time, then the run's files."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("wall time")) - 1
    return lines[start:]


def train_twice(flags: list[str], tmp_path: Path) -> tuple:
    """Runs scripts.train, then the same command on the finished workdir."""
    # An empty JAX_PLATFORMS makes JAX probe every backend (TPU included), as a user's shell
    # does; a fresh matplotlib config directory makes matplotlib build its font cache.
    env = {"JAX_PLATFORMS": "", "MPLCONFIGDIR": str(tmp_path / "mpl")}
    first = run_cli("scripts.train", *flags, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    modified = {path: path.stat().st_mtime_ns for path in tmp_path.glob("run/*")}
    again = run_cli("scripts.train", *flags, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {path: path.stat().st_mtime_ns for path in tmp_path.glob("run/*")} == modified
    return first, again


def check_summary(lines: list[str], files: RunFiles, labels: list[str]) -> None:
    assert re.fullmatch(r"wall time \d+(\.\d)? s|wall time \d+ min \d+ s", lines[1]), lines
    expected = [files.results, files.curves, files.attention, files.checkpoints]
    expected = [path for path in expected if path is not None]
    assert [line.split()[0] for line in lines[2:]] == labels
    for line, path in zip(lines[2:], expected, strict=True):
        assert line.split(maxsplit=1)[1].rstrip("/") == str(path)
        assert path.exists(), path


def test_classifier_run_ends_with_its_verdict_and_a_rerun_trains_nothing(tmp_path):
    write_idx_dataset(tmp_path / "data", "mnist")
    workdir = tmp_path / "run"
    flags = [
        "--config=configs/default.py",
        f"--workdir={workdir}",
        f"--config.data_dir={tmp_path / 'data'}",
        "--config.data_source=files",
        "--config.num_epochs=2",
        "--config.batch_size=32",
        "--config.max_train_examples=96",
    ]
    first, again = train_twice(flags, tmp_path)
    files = run_files(default.get_config(), workdir)
    results = json.loads(files.results.read_text())
    lines = summary_lines(first.stdout)
    assert lines[0] == (
        f"lenet5 on mnist: test accuracy {100 * results['test_accuracy']:.2f} %, "
        f"macro F1 {100 * results['f1']:.2f} %, test loss {results['test_loss']:.4f} "
        f"(checkpoint of epoch {results['best_epoch']}, best on validation)"
    )
    check_summary(lines, files, ["results", "curves", "checkpoint"])
    assert "lenet5_mnist epoch 2/2: train loss" in first.stderr
    assert_only_the_runs_own_info_lines(first.stderr)

    assert f"lenet5_mnist in {workdir} already finished 2 of 2 epochs; nothing to train." in (
        again.stderr
    )
    assert summary_lines(again.stdout)[0] == lines[0]
    assert summary_lines(again.stdout)[2:] == lines[2:]
    assert "epoch 1/2" not in again.stderr and "Resumed" not in again.stderr
    assert_only_the_runs_own_info_lines(again.stderr)

    # Killed between its last save and writing results: the older results file does not count.
    files.results.write_text(json.dumps({**results, "epochs": 1}))
    assert finished_results(files, 2) is None
    assert finished_results(files, 3) is None


def test_seq2seq_run_ends_with_its_verdict_and_a_rerun_trains_nothing(tmp_path):
    workdir = tmp_path / "run"
    flags = [
        "--config=configs/seq2seq.py",
        f"--workdir={workdir}",
        "--config.seq_len=4",
        "--config.num_samples=400",
        "--config.num_epochs=2",
        "--config.batch_size=32",
        "--config.hidden_size=16",
        "--config.embedding_size=8",
        "--config.attention_size=8",
        "--config.num_attention_examples=1",
        "--config.test_lengths=(6,)",
    ]
    first, again = train_twice(flags, tmp_path)
    files = run_files(seq2seq.get_config(), workdir)
    results = json.loads(files.results.read_text())
    lines = summary_lines(first.stdout)
    assert lines[0] == (
        "seq2seq reversal (attention, lists of 1 to 4): greedy token accuracy "
        f"{100 * results['test_token_accuracy']:.2f} %, exact match "
        f"{100 * results['test_sequence_accuracy']:.2f} %, test loss {results['test_loss']:.4f} "
        f"(checkpoint of epoch {results['best_epoch']}, best on validation)"
    )
    check_summary(lines, files, ["results", "curves", "attention", "checkpoint"])
    assert "epoch 2/2: train_loss" in first.stdout
    assert_only_the_runs_own_info_lines(first.stderr)

    assert f"seq2seq in {workdir} already finished 2 of 2 epochs; nothing to train." in (
        again.stderr
    )
    assert summary_lines(again.stdout)[0] == lines[0]
    assert summary_lines(again.stdout)[2:] == lines[2:]
    assert "epoch 1/2" not in again.stdout + again.stderr and "Resuming" not in again.stdout
    assert_only_the_runs_own_info_lines(again.stderr)
