"""The `--models` file, the command line, and the environment set before any heavy import."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradio_app import __main__ as cli
from gradio_app.config import DEFAULT_MODELS, TASKS, all_local, build_config, read_models_file
from jax_models.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_issue_table():
    assert TASKS == (
        "summarization",
        "next_word",
        "story",
        "chatbot",
        "sentiment",
        "question_answering",
        "image_generation",
    )
    assert DEFAULT_MODELS["summarization"] == "facebook/bart-large-cnn"
    assert DEFAULT_MODELS["chatbot"] == "microsoft/DialoGPT-medium"
    assert DEFAULT_MODELS["question_answering"] == "distilbert-base-cased-distilled-squad"


def test_toml_file_maps_tasks_to_hub_ids_and_directories_beside_it(tmp_path):
    (tmp_path / "models" / "bart").mkdir(parents=True)
    models_file = tmp_path / "models.toml"
    models_file.write_text('summarization = "models/bart"\nstory = "gpt2-medium"\n')
    models = read_models_file(models_file)
    assert models == {
        "summarization": str((tmp_path / "models" / "bart").resolve()),
        "story": "gpt2-medium",
    }
    config = build_config(models_file, None)
    assert config.model("summarization") == models["summarization"]
    assert config.model("next_word") == DEFAULT_MODELS["next_word"]


def test_json_file_is_read_too(tmp_path):
    models_file = tmp_path / "models.json"
    models_file.write_text(json.dumps({"sentiment": "/abs/sentiment"}))
    assert read_models_file(models_file) == {"sentiment": "/abs/sentiment"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.toml", 'summarisation = "x"', r"unknown tasks \['summarisation'\]; known tasks"),
        ("m.toml", "story = ", "is not valid TOML"),
        ("m.json", "{", "is not valid JSON"),
        ("m.json", "[1]", "must map task names"),
        ("m.toml", "story = 3", "`story` must be a hub id or a directory, got 3"),
    ],
)
def test_bad_models_file_is_a_clear_user_error(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        read_models_file(tmp_path / name)


def test_missing_models_file_and_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_config(tmp_path / "nope.toml", None)
    with pytest.raises(UserError, match="--checkpoints .* is not a directory"):
        build_config(None, tmp_path / "no_runs")


def test_all_local_only_when_every_model_is_a_directory(tmp_path):
    local = {task: str(tmp_path) for task in TASKS}
    models_file = tmp_path / "all.json"
    models_file.write_text(json.dumps(local))
    assert all_local(build_config(models_file, None))
    models_file.write_text(json.dumps({**local, "story": "gpt2"}))
    assert not all_local(build_config(models_file, None))


@pytest.fixture
def fake_launch(monkeypatch):
    """Runs `main` up to the launch, recording what it would serve and the environment."""
    from gradio_app import app

    launched = {}

    def record(demo, host, port):
        launched.update(host=host, port=port, offline=os.environ.get("HF_HUB_OFFLINE"))
        launched["analytics"] = os.environ.get("GRADIO_ANALYTICS_ENABLED")

    monkeypatch.setattr(app, "build_app", lambda config: config)
    monkeypatch.setattr(app, "launch", record)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # restored after the test
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    return launched


def test_main_serves_on_the_given_address_with_analytics_off(fake_launch):
    cli.main(["--host", "127.0.0.1", "--port", "7999"])
    assert fake_launch == {"host": "127.0.0.1", "port": 7999, "offline": None, "analytics": "False"}


def test_local_models_or_offline_flag_keep_the_hub_offline(fake_launch, tmp_path):
    models_file = tmp_path / "local.json"
    models_file.write_text(json.dumps({task: str(tmp_path) for task in TASKS}))
    cli.main(["--models", str(models_file)])
    assert fake_launch["offline"] == "1"
    os.environ.pop("HF_HUB_OFFLINE")
    cli.main(["--offline"])
    assert fake_launch["offline"] == "1"


def test_bad_command_line_is_one_line_on_stderr_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gradio_app", "--models", str(tmp_path / "nope.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: Models file {tmp_path / 'nope.toml'} does not exist; pass a TOML or JSON file."
    ]
