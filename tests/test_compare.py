"""The comparison study: the report from results files, and the resumable grid end to end."""

import csv
import json
import math
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

import jax_models
from configs import compare, compare_cpu
from jax_models.errors import UserError
from tests.fake_data import write_idx_dataset
from trainers import grid, reference_results, report, run_files
from trainers import train as train_lib

REPO = Path(__file__).resolve().parents[1]


class TinyCNN(nnx.Module):
    """One strided conv and a head: a second model for the grid that compiles in a blink."""

    def __init__(self, *, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs):
        self.conv = nnx.Conv(input_shape[-1], 4, (3, 3), strides=(4, 4), rngs=rngs)
        features = 4 * -(-input_shape[0] // 4) * -(-input_shape[1] // 4)
        self.head = nnx.Linear(features, num_classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.conv(x))
        return self.head(x.reshape(x.shape[0], -1))


jax_models.register("tiny_cnn_compare")(TinyCNN)

CLASS_NAMES = [str(digit) for digit in range(10)]


def fake_results(
    model: str, dataset: str, rng: np.random.Generator, accuracy: float, flops: int
) -> dict:
    """A results dict in the training pipeline's schema, with random but plausible numbers."""
    epochs = 3
    matrix = rng.integers(0, 5, size=(10, 10))
    np.fill_diagonal(matrix, rng.integers(80, 100, size=10))

    def scores() -> float:
        """A macro score near the accuracy, as on a balanced test set."""
        return float(np.clip(accuracy + rng.normal(0, 0.005), 0, 1))

    return {
        "model": model,
        "dataset": dataset,
        "test_loss": float(rng.uniform(0.02, 0.9)),
        "test_accuracy": accuracy,
        "precision": scores(),
        "recall": scores(),
        "f1": scores(),
        "weighted": {"precision": scores(), "recall": scores(), "f1": scores()},
        "per_class": {
            "names": CLASS_NAMES,
            "precision": rng.uniform(0.5, 1, 10).tolist(),
            "recall": rng.uniform(0.5, 1, 10).tolist(),
            "f1": rng.uniform(0.5, 1, 10).tolist(),
            "support": matrix.sum(axis=1).tolist(),
        },
        "confusion_matrix": matrix.tolist(),
        "history": {
            "train_loss": sorted(rng.uniform(0.05, 2, epochs).tolist(), reverse=True),
            "train_accuracy": sorted(rng.uniform(0.3, 1, epochs).tolist()),
            "val_loss": sorted(rng.uniform(0.05, 2, epochs).tolist(), reverse=True),
            "val_accuracy": sorted(rng.uniform(0.3, 1, epochs).tolist()),
            "epoch_time_s": rng.uniform(1, 30, epochs).tolist(),
        },
        "epochs": epochs,
        "best_epoch": epochs,
        "train_time_s": float(rng.uniform(10, 500)),
        "images_per_s": float(rng.uniform(100, 5000)),
        "params": int(flops // 10),
        "flops": flops,
        "config": {"model": model, "dataset": dataset, "num_epochs": epochs, "batch_size": 128},
        "environment": {"jax": "0.0", "flax": "0.0", "device_kind": "cpu", "device_count": 1},
    }


def write_results(workdir: Path, seed: int, results: dict) -> Path:
    path = run_files.results_path(
        run_files.seed_workdir(workdir, seed), f"{results['model']}_{results['dataset']}"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    return path


def table_rows(markdown: str, heading: str) -> dict[str, dict[str, str]]:
    """model -> {column header: cell} of the first table after `heading`."""
    lines = markdown[markdown.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def parse_mean_std(cell: str) -> tuple[float, float | None]:
    parts = [float(part) for part in cell.split("±")]
    return parts[0], (parts[1] if len(parts) > 1 else None)


def section(markdown: str, name: str) -> str:
    """The part of report.md under the `## Title` heading of a dataset or `summary`."""
    start = markdown.index(f"\n## {report.DATASET_TITLES.get(name, name.capitalize())}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end]


# mnist: model -> (FLOPs, accuracy per seed), chosen so that the best model (vgg16) has a cheaper
# rival within one point (alexnet) and within seed noise, and a far cheaper one (lenet5) that is
# neither. tiny_custom has one seed and no study family.
MNIST_STUDY = {
    "vgg16": (300_000_000, (0.990, 0.994)),
    "alexnet": (50_000_000, (0.989, 0.991)),
    "lenet5": (400_000, (0.975, 0.976)),
    "tiny_custom": (50_000, (0.9,)),
}


@pytest.fixture(scope="module")
def synthetic_study(tmp_path_factory) -> Path:
    """Runs as the grid lays them out: MNIST_STUDY, plus two models on CIFAR-10."""
    workdir = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(0)
    cifar10 = {"lenet5": (400_000, (0.61, 0.63)), "tiny_custom": (50_000, (0.4,))}
    for dataset, study in (("mnist", MNIST_STUDY), ("cifar10", cifar10)):
        for model, (flops, accuracies) in study.items():
            for seed, accuracy in enumerate(accuracies):
                write_results(workdir, seed, fake_results(model, dataset, rng, accuracy, flops))
    report.write_report(workdir)
    return workdir


def load_all(workdir: Path) -> dict[tuple[str, str], list[dict]]:
    grouped: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(workdir.glob("seed_*/*_results.json")):
        results = json.loads(path.read_text())
        grouped.setdefault((results["dataset"], results["model"]), []).append(results)
    return grouped


def test_report_tables_agree_with_results_files(synthetic_study: Path):
    markdown = (synthetic_study / report.REPORT_NAME).read_text()
    for (dataset, model), runs in load_all(synthetic_study).items():
        text = section(markdown, dataset)
        row = table_rows(text, "### Results")[model]
        assert int(row["Seeds"]) == len(runs)
        for key, header in (("test_accuracy", "Accuracy %"), ("f1", "F1 %")):
            values = [100 * r[key] for r in runs]
            mean, std = parse_mean_std(row[header])
            assert mean == pytest.approx(statistics.fmean(values), abs=0.0051)
            if len(runs) > 1:
                assert std == pytest.approx(statistics.stdev(values), abs=0.0051)
            else:
                assert std is None
        seconds, _ = parse_mean_std(row["Training time (s)"])
        assert seconds == pytest.approx(
            statistics.fmean(r["train_time_s"] for r in runs), abs=0.051
        )

        family = reference_results.MODEL_FAMILY.get(model)
        reference_rows = table_rows(text, "### Against the study") if family else {}
        if family is None:
            assert model not in reference_rows
            continue
        reference = reference_results.REFERENCE[family][dataset]
        cells = reference_rows[model]
        ours = statistics.fmean(100 * r["recall"] for r in runs)
        assert float(cells["Accuracy study"]) == pytest.approx(100 * reference["accuracy"])
        assert float(cells["Recall %"]) == pytest.approx(ours, abs=0.0051)
        assert float(cells["Recall Δ"]) == pytest.approx(
            ours - 100 * reference["recall"], abs=0.011
        )


def test_report_figures_and_links_exist(synthetic_study: Path):
    markdown = (synthetic_study / report.REPORT_NAME).read_text()
    links = re.findall(r"\]\(([^)]+)\)", markdown)
    for name in (
        "mnist_val_curves.png",
        "cifar10_val_curves.png",
        "accuracy_vs_params.png",
        "accuracy_vs_flops.png",
        "accuracy_heatmap.png",
    ):
        assert name in links
    runs = report.load_runs(synthetic_study)
    for run in runs:
        assert report.confusion_path(run) in links
    for link in links:
        path = synthetic_study / link
        assert path.is_file() and path.stat().st_size > 0, link
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_csv_has_one_row_per_results_file(synthetic_study: Path):
    with open(synthetic_study / "results.csv") as file:
        rows = {(r["dataset"], r["model"], int(r["seed"])): r for r in csv.DictReader(file)}
    files = sorted(synthetic_study.glob("seed_*/*_results.json"))
    assert len(rows) == len(files)
    for path in files:
        results = json.loads(path.read_text())
        seed = int(path.parent.name.removeprefix("seed_"))
        row = rows[results["dataset"], results["model"], seed]
        for key in report.COLUMNS:
            assert float(row[key]) == pytest.approx(results[key])


def test_summary_rules_best_cheapest_and_seed_noise(synthetic_study: Path):
    studied = {m: v for m, v in MNIST_STUDY.items() if len(v[1]) > 1}
    grouped = report.group_runs(report.load_runs(synthetic_study))
    entries = {e.model: e for e in grouped["mnist"] if e.model in studied}
    means = {m: statistics.fmean(a) for m, (_, a) in studied.items()}
    stds = {m: statistics.stdev(a) for m, (_, a) in studied.items()}

    best = max(means, key=means.get)
    assert report.best_entry(list(entries.values())).model == best
    near = [m for m in means if means[m] >= means[best] - 0.01]
    cheapest = min(near, key=lambda m: studied[m][0])
    assert cheapest != best
    assert report.cheapest_near_best(list(entries.values())).model == cheapest
    for a in entries:
        for b in entries:
            noise = math.hypot(stds[a], stds[b])
            assert report.within_noise(entries[a], entries[b]) == (
                abs(means[a] - means[b]) <= noise
            )
    assert report.within_noise(entries[best], grouped["mnist"][-1]) is None  # one seed

    summary = section("\n" + (synthetic_study / report.REPORT_NAME).read_text(), "summary")
    assert f"Best: **{best} (" in summary
    assert f"Cheapest within one point of the best: **{cheapest} (" in summary
    assert "seed noise is not estimated for: tiny_custom" in summary


def test_report_rejects_missing_or_foreign_results(tmp_path: Path):
    with pytest.raises(UserError, match="No results files"):
        report.write_report(tmp_path)
    path = write_results(tmp_path, 0, {"model": "lenet5", "dataset": "mnist"})
    with pytest.raises(UserError, match="lacks test_loss"):
        report.write_report(tmp_path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        report.write_report(tmp_path)


# ---------------------------------------------------------------------------- the grid


@pytest.mark.parametrize("module", [compare, compare_cpu])
def test_study_configs_name_registered_models_of_every_family(module):
    config = module.get_config()
    pairs = grid.grid_pairs(config)  # raises on an unknown model or dataset
    models = grid.parse_list(config.models, "model")
    assert len(pairs) == len(models) * 3 * len(grid.parse_list(config.seeds, "seed"))
    families = [reference_results.MODEL_FAMILY[model] for model in models]
    assert sorted(families) == sorted(reference_results.FAMILIES)
    assert set(models) <= set(jax_models.MODELS)


def test_grid_parses_command_line_lists_and_rejects_bad_ones():
    config = compare.get_config()
    config.models, config.datasets, config.seeds = " lenet5,resnet20,lenet5 ", "mnist", "1,0"
    assert [(p.model, p.seed) for p in grid.grid_pairs(config)] == [
        ("lenet5", 1),
        ("resnet20", 1),
        ("lenet5", 0),
        ("resnet20", 0),
    ]
    for key, value, message in (
        ("models", "lenet5,lenet7", "Unknown model lenet7"),
        ("datasets", "svhn", "Unknown dataset svhn"),
        ("seeds", "0,x", "Seed 'x'"),
        ("models", " , ", "at least one model"),
    ):
        bad = compare.get_config()
        bad[key] = value
        with pytest.raises(UserError, match=message):
            grid.grid_pairs(bad)


NUM_EPOCHS = 2


def tiny_study_config(data_root: Path):
    """Two models, one dataset, two seeds, a few batches: the grid's whole life in seconds."""
    config = compare.get_config()
    config.models = "lenet5,tiny_cnn_compare"
    config.datasets = "mnist"
    config.seeds = "0,1"
    config.train.update(
        num_epochs=NUM_EPOCHS,
        batch_size=16,
        max_train_examples=64,
        eval_batch_size=64,
        data_dir=str(data_root),
        data_source="files",
    )
    return config


@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory) -> dict:
    """Runs the grid, kills it inside the second pair's second epoch, then reruns it."""
    data_root = tmp_path_factory.mktemp("data")
    # 120 training images leave 12 for validation; 12 test images share its eval compilation.
    write_idx_dataset(data_root, "mnist", num_train=120, num_test=12)
    workdir = tmp_path_factory.mktemp("study")
    config = tiny_study_config(data_root)
    real_train_epoch = train_lib.train_epoch
    epochs_run: list[tuple[str, int, int]] = []

    def killed_in_second_pair(run, epoch):
        if (run.config.model, run.config.seed, epoch) == ("tiny_cnn_compare", 0, 2):
            raise KeyboardInterrupt
        return real_train_epoch(run, epoch)

    def recorded(run, epoch):
        epochs_run.append((run.config.model, run.config.seed, epoch))
        return real_train_epoch(run, epoch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_lib, "train_epoch", killed_in_second_pair)
        with pytest.raises(KeyboardInterrupt):
            grid.run_study(config, workdir)
    after_interrupt = sorted(p.relative_to(workdir).as_posix() for p in workdir.rglob("*.json"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_lib, "train_epoch", recorded)
        report_path = grid.run_study(config, workdir)
    return {
        "workdir": workdir,
        "config": config,
        "after_interrupt": after_interrupt,
        "epochs_run": epochs_run,
        "report": report_path,
    }


def test_grid_resume_skips_finished_pairs_and_resumes_the_interrupted_one(
    interrupted_then_resumed,
):
    assert interrupted_then_resumed["after_interrupt"] == ["seed_0/lenet5_mnist_results.json"]
    # The finished pair is not retrained; the interrupted one restarts at its second epoch.
    assert interrupted_then_resumed["epochs_run"] == [
        ("tiny_cnn_compare", 0, 2),
        ("lenet5", 1, 1),
        ("lenet5", 1, 2),
        ("tiny_cnn_compare", 1, 1),
        ("tiny_cnn_compare", 1, 2),
    ]
    workdir = interrupted_then_resumed["workdir"]
    for path in workdir.glob("seed_*/*_results.json"):
        assert json.loads(path.read_text())["epochs"] == NUM_EPOCHS


def test_grid_skips_everything_when_finished_and_refuses_another_schedule(
    interrupted_then_resumed, monkeypatch, capsys
):
    workdir, config = interrupted_then_resumed["workdir"], interrupted_then_resumed["config"]

    def must_not_train(config, workdir):
        raise AssertionError("a finished pair was trained again")

    monkeypatch.setattr(train_lib, "train_and_evaluate", must_not_train)
    assert grid.train_grid(config, workdir) == []
    lines = [line for line in capsys.readouterr().out.splitlines() if "[compare] pair" in line]
    assert len(lines) == 4 and all("skipped" in line for line in lines)
    assert lines[0].startswith("[compare] pair 1/4: lenet5 on mnist, seed 0")

    config = tiny_study_config(Path(config.train.data_dir))
    config.train.num_epochs = NUM_EPOCHS + 1
    with pytest.raises(UserError, match=f"num_epochs {NUM_EPOCHS} \\(asked: {NUM_EPOCHS + 1}\\)"):
        grid.train_grid(config, workdir)


def test_grid_report_agrees_with_its_results_files(interrupted_then_resumed):
    workdir = interrupted_then_resumed["workdir"]
    markdown = interrupted_then_resumed["report"].read_text()
    rows = table_rows(section(markdown, "mnist"), "### Results")
    assert set(rows) == {"tiny_cnn_compare", "lenet5"}
    for model, row in rows.items():
        runs = [
            json.loads(p.read_text()) for p in workdir.glob(f"seed_*/{model}_mnist_results.json")
        ]
        assert int(row["Seeds"]) == len(runs) == 2
        mean, std = parse_mean_std(row["Accuracy %"])
        accuracies = [100 * r["test_accuracy"] for r in runs]
        assert mean == pytest.approx(statistics.fmean(accuracies), abs=0.0051)
        assert std == pytest.approx(statistics.stdev(accuracies), abs=0.0051)
        loss, _ = parse_mean_std(row["Test loss"])
        assert loss == pytest.approx(statistics.fmean(r["test_loss"] for r in runs), abs=5.1e-5)
    for name in ("mnist_val_curves.png", "accuracy_heatmap.png", "accuracy_vs_flops.png"):
        assert (workdir / name).is_file()
    for seed in (0, 1):
        for model in ("tiny_cnn_compare", "lenet5"):
            assert (workdir / report.CONFUSION_DIR / f"{model}_mnist_seed{seed}.png").is_file()


def test_report_only_rebuilds_the_same_report_without_training(
    interrupted_then_resumed, monkeypatch
):
    workdir = interrupted_then_resumed["workdir"]
    before = (workdir / report.REPORT_NAME).read_text()
    (workdir / report.REPORT_NAME).unlink()
    (workdir / "accuracy_heatmap.png").unlink()

    def must_not_train(config, workdir):
        raise AssertionError("report_only trained a pair")

    monkeypatch.setattr(train_lib, "train_and_evaluate", must_not_train)
    config = compare.get_config()
    config.report_only = True
    assert grid.run_study(config, workdir) == workdir / report.REPORT_NAME
    assert (workdir / report.REPORT_NAME).read_text() == before
    assert (workdir / "accuracy_heatmap.png").is_file()


def run_compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.compare", "--config=configs/compare.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=300,
    )


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path):
    result = run_compare(f"--workdir={tmp_path}", "--config.models=lenet5,lenet7")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Unknown model lenet7")
