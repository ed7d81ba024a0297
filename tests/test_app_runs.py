"""How the app finds trained runs below `--checkpoints` (gradio_app.runs): at any depth up to
a bound, described from their results files alone, and never outside the folder it was given.
The runs here are only their files (results JSON and an empty checkpoint folder): finding them
reads nothing else."""

import json
from pathlib import Path

import pytest

from gradio_app import __main__ as cli
from gradio_app import runs
from gradio_app.config import AppConfig
from jax_models.errors import UserError


def fake_run(workdir: Path, prefix: str, config: dict, **results: float) -> Path:
    """The two things a finished `scripts.train` run leaves that the listing looks at."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{prefix}_model").mkdir()
    (workdir / f"{prefix}_results.json").write_text(json.dumps({"config": config, **results}))
    return workdir


def fake_classifier(workdir: Path, model: str = "lenet5", dataset: str = "mnist") -> Path:
    config = {"model": model, "dataset": dataset}
    return fake_run(workdir, f"{model}_{dataset}", config, test_accuracy=0.9867)


def fake_reverser(workdir: Path, seq_len: int = 20, min_seq_len: int = 1) -> Path:
    config = {"task": "seq2seq", "seq_len": seq_len, "min_seq_len": min_seq_len}
    config.update(vocab_size=10, use_attention=True)
    return fake_run(workdir, "seq2seq", config, test_token_accuracy=1.0)


def keys(root: Path | None, task: str) -> list[str]:
    return [run.key for run in runs.find_runs(root, task).runs]


def test_the_readme_layout_is_found_one_level_down(tmp_path):
    fake_classifier(tmp_path / "runs" / "lenet5_mnist")
    fake_reverser(tmp_path / "runs" / "seq2seq")
    root = tmp_path / "runs"
    assert keys(root, runs.CLASSIFICATION) == ["lenet5_mnist/lenet5_mnist"]
    assert keys(root, runs.SEQ2SEQ) == ["seq2seq/seq2seq"]
    (classifier,) = runs.find_runs(root, runs.CLASSIFICATION).runs
    assert classifier.label() == "lenet5 on MNIST, 98.67% test accuracy — lenet5_mnist/"
    (reverser,) = runs.find_runs(root, runs.SEQ2SEQ).runs
    assert reverser.label() == (
        "seq2seq with attention, lists of 1–20 tokens 0–9, 100.00% token accuracy — seq2seq/"
    )


def test_runs_are_found_at_any_depth_up_to_the_bound_and_in_order(tmp_path):
    fake_classifier(tmp_path)  # the folder itself is a workdir
    fake_classifier(tmp_path / "study" / "seed_0", "resnet20", "cifar10")
    fake_classifier(tmp_path / "study" / "seed_0", "lenet5", "fashion_mnist")
    deep = tmp_path.joinpath(*"abcd")  # runs.MAX_DEPTH levels down
    fake_classifier(deep)
    fake_classifier(deep / "e")  # one level too deep
    fake_classifier(tmp_path / ".hidden")
    assert keys(tmp_path, runs.CLASSIFICATION) == [
        "a/b/c/d/lenet5_mnist",
        "lenet5_mnist",
        "study/seed_0/lenet5_fashion_mnist",
        "study/seed_0/resnet20_cifar10",
    ]
    assert keys(tmp_path, runs.SEQ2SEQ) == []


def test_an_unfinished_or_foreign_results_file_is_not_a_run(tmp_path):
    (tmp_path / "still_training_model").mkdir()  # checkpoints, no results yet
    (tmp_path / "copied_results.json").write_text("{}")  # results, no checkpoints
    fake_run(tmp_path / "other", "notes", {"something": "else"})
    fake_run(tmp_path / "broken", "lenet5_mnist", {"model": "lenet5"}, test_accuracy=0.5)
    (tmp_path / "binary_model").mkdir()
    (tmp_path / "binary_results.json").write_bytes(b"\xff\xfe\x00")
    assert keys(tmp_path, runs.CLASSIFICATION) == []


def test_the_walk_stops_after_a_bounded_number_of_folders(tmp_path, monkeypatch):
    for i in range(5):
        (tmp_path / f"empty_{i}").mkdir()
    fake_classifier(tmp_path / "zz_last")
    monkeypatch.setattr(runs, "MAX_FOLDERS", 3)
    listing = runs.find_runs(tmp_path, runs.CLASSIFICATION)
    assert listing.runs == () and not listing.complete
    assert "Stopped looking after 3 folders" in runs.listing_status(
        tmp_path, runs.CLASSIFICATION, listing
    )
    monkeypatch.setattr(runs, "MAX_FOLDERS", 10)
    assert runs.find_runs(tmp_path, runs.CLASSIFICATION).complete


def test_a_run_is_chosen_by_its_key_or_the_first_by_default(tmp_path):
    fake_classifier(tmp_path / "b")
    fake_classifier(tmp_path / "a", "resnet20", "cifar10")
    assert runs.choose_run(tmp_path, None, runs.CLASSIFICATION).key == "a/resnet20_cifar10"
    chosen = runs.choose_run(tmp_path, "b/lenet5_mnist", runs.CLASSIFICATION)
    assert chosen.workdir == (tmp_path / "b").resolve() and chosen.prefix == "lenet5_mnist"
    assert chosen.model_ref == str((tmp_path / "b" / "lenet5_mnist").resolve())
    with pytest.raises(UserError, match="There is no trained classifier `b/nope` below"):
        runs.choose_run(tmp_path, "b/nope", runs.CLASSIFICATION)
    with pytest.raises(UserError, match="There is no trained sequence reverser `b/lenet5_mnist`"):
        runs.choose_run(tmp_path, "b/lenet5_mnist", runs.SEQ2SEQ)


@pytest.mark.parametrize(
    "key",
    [
        "../outside/lenet5_mnist",
        "a/../../outside/lenet5_mnist",
        "{outside}/lenet5_mnist",  # absolute
        "linked/lenet5_mnist",  # a link inside that leads outside
        "a/lenet5_mnist_link",  # links to a run's files outside, in a folder inside
    ],
)
def test_names_that_lead_outside_the_folder_are_refused(tmp_path, key):
    root, outside = tmp_path / "runs", fake_classifier(tmp_path / "outside")
    fake_classifier(root / "a")
    (root / "linked").symlink_to(outside)
    (root / "a" / "lenet5_mnist_link_results.json").symlink_to(
        outside / "lenet5_mnist_results.json"
    )
    (root / "a" / "lenet5_mnist_link_model").symlink_to(outside / "lenet5_mnist_model")
    assert keys(root, runs.CLASSIFICATION) == ["a/lenet5_mnist"]  # links are not listed
    with pytest.raises(UserError, match="leads outside the checkpoints folder"):
        runs.choose_run(root, key.format(outside=outside), runs.CLASSIFICATION)


@pytest.mark.parametrize("key", ["a\x00b", "a" * 300, "a/" * 3000 + "x"])
def test_a_name_no_file_system_takes_is_not_found(tmp_path, key):
    with pytest.raises(UserError, match="There is no trained classifier"):
        runs.choose_run(tmp_path, key, runs.CLASSIFICATION)


def test_without_a_folder_or_runs_the_status_says_how_to_train(tmp_path):
    none_given = runs.listing_status(None, runs.SEQ2SEQ, runs.find_runs(None, runs.SEQ2SEQ))
    assert none_given.startswith("No trained sequence reverser found (no `--checkpoints`")
    assert "--config=configs/seq2seq.py --workdir=runs/seq2seq" in none_given
    empty = runs.listing_status(
        tmp_path, runs.CLASSIFICATION, runs.find_runs(tmp_path, runs.CLASSIFICATION)
    )
    assert f"--workdir={tmp_path / 'lenet5_mnist'}`" in empty
    assert f"python -m gradio_app --checkpoints {tmp_path}`" in empty
    with pytest.raises(UserError, match="no `--checkpoints` folder given"):
        runs.choose_run(None, None, runs.CLASSIFICATION)


def test_start_up_says_what_the_checkpoints_folder_holds(tmp_path, capsys):
    fake_classifier(tmp_path / "lenet5_mnist")
    fake_reverser(tmp_path / "seq2seq")
    fake_reverser(tmp_path / "ablation" / "no_attention_len10", seq_len=10, min_seq_len=0)
    cli.report_runs(AppConfig(checkpoints=tmp_path))
    assert capsys.readouterr().out == (
        f"Checkpoints: 1 trained classifier(s) and 2 sequence reverser(s) below {tmp_path}.\n"
    )
