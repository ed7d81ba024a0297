"""The command line explains itself: --help generated from the configs, bad input as one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import config_help

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = [
    f"configs/{name}.py" for name in ("compare", "compare_cpu", "default", "seq2seq", "strong")
]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        timeout=120,
    )


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    """Config paths are relative to the repository root, as on the command line."""
    monkeypatch.chdir(REPO)


def test_config_files_are_those_with_get_config():
    files = config_help.config_files()
    assert list(files) == CONFIG_FILES
    assert all(files.values())


@pytest.mark.parametrize("path", CONFIG_FILES)
def test_every_config_key_has_a_description(path):
    """A key added without a comment beside or above it fails here, not in a user's --help."""
    keys = list(config_help.flatten(config_help.load_config(path)))
    undescribed = [key for key, text in config_help.describe(path, keys).items() if not text]
    assert keys and not undescribed, f"add a comment to {undescribed} in {path}"


def test_comment_beside_wins_over_block_above_and_blank_line_ends_a_block():
    source = (
        "def get_config():\n"
        "    # Above a,\n"
        "    # two lines.\n"
        "    config.a = 1\n"
        "    # Header.\n"
        "    config.b = 2  # beside b\n"
        "    # Detached.\n"
        "\n"
        "    config.c = 3\n"
        "    config.train.d = (\n"
        "        4,  # beside d\n"
        "    )\n"
    )
    assert config_help.key_comments(source) == {
        "a": "Above a, two lines.",
        "b": "beside b",
        "train.d": "beside d",
    }


def test_nested_keys_fall_back_to_the_imported_config():
    path = "configs/compare_cpu.py"
    described = config_help.describe(path, ["train.batch_size", "seeds"])
    default = config_help.describe("configs/default.py", ["batch_size"])
    assert described["train.batch_size"] == default["batch_size"]
    assert described["seeds"] == config_help.describe("configs/compare.py", ["seeds"])["seeds"]


@pytest.mark.parametrize(
    ("script", "flags", "config"),
    [
        ("scripts.train", ["--help"], "configs/default.py"),
        ("scripts.compare", ["-h"], "configs/compare.py"),
        ("scripts.evaluate", ["--helpfull", "--config=configs/seq2seq.py"], "configs/seq2seq.py"),
    ],
)
def test_help_lists_config_files_and_every_key_with_default_and_description(script, flags, config):
    result = run_cli(script, *flags)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"usage: python -m {script} --config=CONFIG --workdir=WORKDIR")
    for file, first_line in config_help.config_files().items():
        assert f"  {file}  " in result.stdout and first_line in result.stdout
    defaults = config_help.flatten(config_help.load_config(config))
    for key, description in config_help.describe(config, list(defaults)).items():
        line = lines.index(f"  {key} = {defaults[key]!r}")
        assert lines[line + 1] == f"      {description}"


COMPARE = ("scripts.compare", "--config=configs/compare.py")
ERRORS = {
    "misspelled key": (
        ("scripts.train", "--config=configs/default.py", "--config.lerning_rate=1"),
        "error: unknown config key 'lerning_rate'; did you mean 'learning_rate'? "
        "See --help for the keys of configs/default.py.",
    ),
    "missing config file": (
        ("scripts.train", "--config=configs/nope.py"),
        "error: config file configs/nope.py not found; pass one of configs/compare.py, "
        "configs/compare_cpu.py, configs/default.py, configs/seq2seq.py, configs/strong.py as "
        "--config.",
    ),
    "wrong type": (
        ("scripts.train", "--config=configs/default.py", "--config.batch_size=abc"),
        "error: config key 'batch_size' must be int (default: 128), not 'abc'; "
        "pass e.g. --config.batch_size=128.",
    ),
    "wrong tuple element type": (
        ("scripts.train", "--config=configs/seq2seq.py", "--config.test_lengths=abc"),
        "error: config key 'test_lengths' must be tuple of int (default: (10, 40)), "
        "not ('abc',); pass e.g. --config.test_lengths=10,40.",
    ),
    "missing config": (
        ("scripts.evaluate",),
        "error: missing --config; pass --config=FILE with FILE one of configs/compare.py, "
        "configs/compare_cpu.py, configs/default.py, configs/seq2seq.py, configs/strong.py.",
    ),
    "misspelled nested key": (
        (*COMPARE, "--config.train.bach_size=1"),
        "error: unknown config key 'train.bach_size'; did you mean 'train.batch_size'? "
        "See --help for the keys of configs/compare.py.",
    ),
    "misspelled key, default config": (
        ("scripts.seq2seq_ablation", "--config.lerning_rate=1"),
        "error: unknown config key 'lerning_rate'; did you mean 'learning_rate'? "
        f"See --help for the keys of {REPO / 'configs' / 'seq2seq.py'}.",
    ),
    "seq2seq config to evaluate": (
        ("scripts.evaluate", "--config=configs/seq2seq.py"),
        "error: scripts.evaluate recomputes a classifier run's test figures; a seq2seq run's "
        "are in its seq2seq_results.json, which scripts.train writes.",
    ),
    "nested wrong type": (
        (*COMPARE, "--config.train.distributed=maybe"),
        "error: config key 'train.distributed' must be bool (default: False), not 'maybe'; "
        "pass e.g. --config.train.distributed=False.",
    ),
}


@pytest.mark.parametrize(("args", "expected"), ERRORS.values(), ids=ERRORS.keys())
def test_bad_input_is_one_error_line_and_exit_2(args, expected, tmp_path):
    workdir = tmp_path / "run"
    result = run_cli(*args, f"--workdir={workdir}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [expected]
    assert not workdir.exists()  # rejected before the run began


def test_missing_workdir_is_one_error_line_and_exit_2():
    result = run_cli("scripts.compare", "--config=configs/compare_cpu.py")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: missing --workdir; pass --workdir=WORKDIR: "
        "Directory of the study: per-seed runs and the report."
    )


def test_valid_overrides_reach_main(tmp_path):
    """Known keys of the right type, in every flag form, pass through to the script's own checks."""
    result = run_cli(
        "scripts.evaluate",
        "--config=configs/default.py",
        f"--workdir={tmp_path}",
        "--config.batch_size",
        "64",
        "--config.learning_rate=1",
        "--noconfig.distributed",
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: No checkpoint directory {tmp_path}")
