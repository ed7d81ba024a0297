"""The `--models` file, the command line, and the environment set before any heavy import."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gradio_app import __main__ as cli
from gradio_app.config import DEFAULT_MODELS, TASKS, all_local, build_config, read_models_file
from jax_models.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    (tmp_path / "sentiment").mkdir()
    models_file = tmp_path / "models.json"
    models_file.write_text(json.dumps({"sentiment": str(tmp_path / "sentiment")}))
    assert read_models_file(models_file) == {"sentiment": str((tmp_path / "sentiment").resolve())}


def test_relative_paths_are_read_from_the_files_folder_not_the_current_one(tmp_path, monkeypatch):
    config_dir, elsewhere = tmp_path / "config", tmp_path / "elsewhere"
    (config_dir / "models" / "gpt2").mkdir(parents=True)
    (elsewhere / "models" / "gpt2").mkdir(parents=True)
    (elsewhere / "models" / "sst2").mkdir(parents=True)  # beside the current directory only
    models_file = config_dir / "models.toml"
    models_file.write_text('story = "models/gpt2"\nnext_word = "./models/../models/gpt2"\n')
    monkeypatch.chdir(elsewhere)
    expected = str((config_dir / "models" / "gpt2").resolve())
    assert read_models_file(models_file) == {"story": expected, "next_word": expected}
    models_file.write_text('sentiment = "models/sst2"\n')
    with pytest.raises(UserError, match="does not exist"):
        read_models_file(models_file)


@pytest.mark.parametrize(
    "value",
    ["models/sst2", "./sst2", "../sst2", "~/no-such-folder-for-the-app-test", "a/b/c", "my model"],
)
def test_a_path_that_does_not_exist_is_reported_at_once_not_tried_on_the_hub(tmp_path, value):
    (tmp_path / "models").mkdir()  # so `models/sst2` is a path, though sst2 is missing
    models_file = tmp_path / "models.toml"
    models_file.write_text(f'sentiment = "{value}"\n')
    missing = (tmp_path / Path(value).expanduser()).resolve()
    with pytest.raises(UserError) as raised:
        read_models_file(models_file)
    assert str(raised.value) == (
        f"Models file {models_file}: `sentiment` names the local directory {missing}, which "
        "does not exist; download the model there (hf download "
        f"distilbert-base-uncased-finetuned-sst-2-english --local-dir {missing}) or correct "
        "the path."
    )


def test_name_and_org_name_are_hub_ids_unless_a_folder_of_that_name_is_beside_the_file(tmp_path):
    models_file = tmp_path / "models.toml"
    models_file.write_text('story = "gpt2"\nchatbot = "microsoft/DialoGPT-medium"\n')
    assert read_models_file(models_file) == {
        "story": "gpt2",
        "chatbot": "microsoft/DialoGPT-medium",
    }
    (tmp_path / "gpt2").mkdir()
    assert read_models_file(models_file)["story"] == str((tmp_path / "gpt2").resolve())


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


def test_a_binary_or_unreadable_models_file_is_a_clear_user_error(tmp_path):
    binary = tmp_path / "models.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(UserError, match="is not a text file \\(it is not UTF-8\\)"):
        read_models_file(binary)
    with pytest.raises(UserError, match="cannot be read \\(Is a directory\\)"):
        read_models_file(tmp_path)


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
    port = free_port()
    cli.main(["--host", "127.0.0.1", "--port", str(port)])
    assert fake_launch == {"host": "127.0.0.1", "port": port, "offline": None, "analytics": "False"}


def test_local_models_or_offline_flag_keep_the_hub_offline(fake_launch, tmp_path):
    models_file = tmp_path / "local.json"
    models_file.write_text(json.dumps({task: str(tmp_path) for task in TASKS}))
    cli.main(["--models", str(models_file), "--port", str(free_port())])
    assert fake_launch["offline"] == "1"
    os.environ.pop("HF_HUB_OFFLINE")
    cli.main(["--offline", "--port", str(free_port())])
    assert fake_launch["offline"] == "1"


def start(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gradio_app", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_missing_or_binary_models_file_is_one_line_on_stderr_and_exit_2(tmp_path):
    result = start("--models", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: Models file {tmp_path / 'nope.toml'} does not exist; pass a TOML or JSON file."
    ]
    binary = tmp_path / "models.json"
    binary.write_bytes(bytes(range(256)))
    result = start("--models", str(binary))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: Models file {binary} is not a text file (it is not UTF-8); pass a TOML or JSON "
        "file."
    ]


def test_a_port_in_use_is_one_line_naming_the_port_option():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = start("--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: Port {port} on 127.0.0.1 is in use (another copy of the app?); choose a free "
        "one with --port."
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--host", "192.0.2.1"],  # TEST-NET-1: never this machine's
            "error: --host 192.0.2.1 is not an address of this machine; use 127.0.0.1 (this "
            "machine only) or 0.0.0.0 (every network interface).",
        ),
        (
            ["--port", "70000"],
            "error: argument --port: '70000' is not a port; give a number from 1 to 65535; "
            "python -m gradio_app --help lists the options.",
        ),
    ],
)
def test_a_bad_address_is_one_line_and_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(args)
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [message]


def test_a_host_name_that_does_not_resolve_is_named(monkeypatch):
    def unknown(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(UserError) as raised:
        cli.check_address("no-such-host", 7860)
    assert str(raised.value) == (
        "--host no-such-host is not an address or a host name this machine knows (Name or "
        "service not known); use 127.0.0.1 (this machine only) or 0.0.0.0 (every network "
        "interface)."
    )
