"""The comparison study's report: tables, figures and a generated summary.

A pure function of the results files under `{workdir}/seed_{S}/` (and `{workdir}/{recipe}/
seed_{S}/` for grids trained with another recipe than the study's), so a report can be rebuilt
at any time (`--config.report_only=True`), from any subset of the grid, without training
anything. Results are grouped into panels, one per dataset and recipe; each panel states its
recipe, and a dataset trained under several recipes gets a table of how the ranking moves.
Figures use matplotlib's object API (`Figure`), which needs no display and no global state.
"""

import csv
import dataclasses
import itertools
import json
import math
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from jax_models.errors import UserError
from trainers import recipes, reference_results
from trainers.data import DATASETS
from trainers.run_files import RESULTS_SUFFIX

REPORT_NAME = "report.md"
CONFUSION_DIR = "confusion"
DATASET_TITLES: dict[str, str] = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
}
# Reference metric name -> key of the same metric in a results file.
RESULT_KEYS: dict[str, str] = {
    "accuracy": "test_accuracy",
    "precision": "precision",
    "recall": "recall",
    "f1": "f1",
}
REQUIRED_KEYS: tuple[str, ...] = (
    "model",
    "dataset",
    "test_loss",
    "test_accuracy",
    "precision",
    "recall",
    "f1",
    "per_class",
    "confusion_matrix",
    "history",
    "epochs",
    "train_time_s",
    "images_per_s",
    "params",
    "flops",
)
# Config entries of the budget that make two runs comparable; the report states them once.
# The recipe's keys (`trainers.recipes.RECIPE_KEYS`) are stated per panel.
SCHEDULE_KEYS: tuple[str, ...] = (
    "num_epochs",
    "batch_size",
    "max_train_examples",
    "validation_fraction",
)
STUDY = recipes.STUDY_RECIPE["recipe"]
ONE_POINT = 0.01  # "within one point of the best": one percentage point of test accuracy.
_SEED_DIR = re.compile(r"seed_(\d+)")
_DPI = 110


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished (model, dataset, seed) training run."""

    seed: int
    path: Path
    results: dict[str, Any]

    @property
    def model(self) -> str:
        return self.results["model"]

    @property
    def dataset(self) -> str:
        return self.results["dataset"]

    @property
    def config(self) -> dict[str, Any]:
        """The run's config, with the study's value of each recipe key it predates."""
        return {**recipes.STUDY_RECIPE, **self.results.get("config", {})}

    @property
    def recipe(self) -> str:
        return self.config["recipe"]


@dataclasses.dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over seeds; `std` is None for a single seed."""

    mean: float
    std: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stat":
        values = [float(v) for v in values]
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(statistics.fmean(values), std)


@dataclasses.dataclass(frozen=True)
class Entry:
    """All seeds of one model on one dataset under one recipe."""

    model: str
    dataset: str
    runs: tuple[Run, ...]
    recipe: str = STUDY

    @property
    def family(self) -> str | None:
        return reference_results.MODEL_FAMILY.get(self.model)

    def stat(self, key: str) -> Stat:
        return Stat.of([run.results[key] for run in self.runs])

    @property
    def accuracy(self) -> Stat:
        return self.stat("test_accuracy")

    def reference(self) -> dict[str, float] | None:
        return reference_results.REFERENCE.get(self.family or "", {}).get(self.dataset)


def load_results(path: Path) -> dict[str, Any]:
    """One results file, checked for the keys the report reads."""
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(
            f"{path} is not valid JSON ({error}); delete it so the grid retrains that pair."
        ) from error
    missing = [key for key in REQUIRED_KEYS if key not in results]
    if missing:
        raise UserError(
            f"{path} lacks {', '.join(missing)}; it was not written by the training "
            "pipeline, so delete it so the grid retrains that pair."
        )
    return results


def _results_files(workdir: str | Path) -> list[tuple[int, Path]]:
    """(seed, path) of every results file in the grid's layout under `workdir`: the study
    recipe's seeds, then those of each other recipe's folder."""
    paths = [
        *sorted(Path(workdir).glob(f"seed_*/*{RESULTS_SUFFIX}")),
        *sorted(Path(workdir).glob(f"*/seed_*/*{RESULTS_SUFFIX}")),
    ]
    found = []
    for path in paths:
        match = _SEED_DIR.fullmatch(path.parent.name)
        if match is not None:
            found.append((int(match.group(1)), path))
    return found


def has_results(workdir: str | Path) -> bool:
    return bool(_results_files(workdir))


def load_runs(workdir: str | Path) -> list[Run]:
    """Every results file of the grid in `workdir`."""
    runs = [Run(seed, path, load_results(path)) for seed, path in _results_files(workdir)]
    if not runs:
        raise UserError(
            f"No results files under {Path(workdir)}/seed_*/; run the grid first "
            "(without --config.report_only)."
        )
    return runs


def _model_order(model: str) -> tuple[int, str]:
    family = reference_results.MODEL_FAMILY.get(model)
    families = reference_results.FAMILIES
    return (families.index(family) if family in families else len(families), model)


def _dataset_order(dataset: str) -> tuple[int, str]:
    known = list(DATASETS)
    return (known.index(dataset) if dataset in known else len(known), dataset)


def _recipe_order(recipe: str) -> tuple[bool, str]:
    return (recipe != STUDY, recipe)


def panel_key(dataset: str, recipe: str) -> str:
    """A panel's key, also the stem of its file names: the dataset, suffixed by any recipe
    but the study's (`cifar10`, `cifar10_strong`)."""
    return dataset if recipe == STUDY else f"{dataset}_{recipe}"


def group_runs(runs: Iterable[Run]) -> dict[str, list[Entry]]:
    """Panel key -> its entries; datasets, then recipes (the study's first), then models in
    the study's order; seeds ascending."""
    by_pair: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        by_pair.setdefault((run.dataset, run.recipe, run.model), []).append(run)
    grouped: dict[str, list[Entry]] = {}
    for dataset, recipe, model in sorted(
        by_pair,
        key=lambda key: (_dataset_order(key[0]), _recipe_order(key[1]), _model_order(key[2])),
    ):
        runs_of_pair = tuple(sorted(by_pair[dataset, recipe, model], key=lambda run: run.seed))
        grouped.setdefault(panel_key(dataset, recipe), []).append(
            Entry(model, dataset, runs_of_pair, recipe)
        )
    return grouped


# ---------------------------------------------------------------------------- formatting


def _with_std(stat: Stat, spec: str, scale: float = 1.0) -> str:
    text = format(stat.mean * scale, spec)
    if stat.std is not None:
        text += f" ± {format(stat.std * scale, spec)}"
    return text


def _percent(stat: Stat) -> str:
    return _with_std(stat, ".2f", 100.0)


def _si(value: float) -> str:
    """Counts with an SI prefix, three significant digits: 61.7 k, 1.21 G."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}"
    return f"{value:.0f}"


def _count(stat: Stat) -> str:
    return _si(stat.mean)


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


# Results key -> (column header, formatter) of the per-dataset table.
COLUMNS: dict[str, tuple[str, Callable[[Stat], str]]] = {
    "test_accuracy": ("Accuracy %", _percent),
    "precision": ("Precision %", _percent),
    "recall": ("Recall %", _percent),
    "f1": ("F1 %", _percent),
    "test_loss": ("Test loss", lambda stat: _with_std(stat, ".4f")),
    "epochs": ("Epochs", lambda stat: _with_std(stat, ".3g") if stat.std else f"{stat.mean:g}"),
    "train_time_s": ("Training time (s)", lambda stat: _with_std(stat, ".1f")),
    "images_per_s": ("Images/s", lambda stat: _with_std(stat, ",.0f")),
    "params": ("Parameters", _count),
    "flops": ("FLOPs/image", _count),
}


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _count_of(items: Sequence | dict, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _title(dataset: str) -> str:
    return DATASET_TITLES.get(dataset, dataset)


def _panel_title(entries: Sequence[Entry]) -> str:
    """`CIFAR-10`, or `CIFAR-10, strong recipe` for any recipe but the study's."""
    first = entries[0]
    title = _title(first.dataset)
    return title if first.recipe == STUDY else f"{title}, {first.recipe} recipe"


# ---------------------------------------------------------------------------- tables


def results_table(entries: Sequence[Entry]) -> str:
    header = ["Model", "Family", "Seeds"] + [title for title, _ in COLUMNS.values()]
    rows = [
        [entry.model, entry.family or "—", str(len(entry.runs))]
        + [fmt(entry.stat(key)) for key, (_, fmt) in COLUMNS.items()]
        for entry in entries
    ]
    return _markdown_table(header, rows)


def reference_table(entries: Sequence[Entry]) -> str:
    """Mean over seeds beside the study's value and the difference, in percentage points."""
    header = ["Model", "Family"]
    for metric in reference_results.METRICS:
        name = metric.capitalize()
        header += [f"{name} %", f"{name} study", f"{name} Δ"]
    rows = []
    for entry in entries:
        reference = entry.reference()
        if reference is None:
            continue
        row = [entry.model, entry.family or "—"]
        for metric in reference_results.METRICS:
            ours = 100 * entry.stat(RESULT_KEYS[metric]).mean
            theirs = 100 * reference[metric]
            row += [f"{ours:.2f}", f"{theirs:.0f}", _signed(ours - theirs)]
        rows.append(row)
    return _markdown_table(header, rows) if rows else ""


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def write_csvs(directory: Path, grouped: dict[str, list[Entry]]) -> None:
    """`results.csv` (one row per run) and `summary.csv` (per model, dataset and recipe) for
    reanalysis."""
    entries = [entry for dataset_entries in grouped.values() for entry in dataset_entries]
    with open(directory / "results.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["dataset", "model", "family", "seed", *COLUMNS, "best_epoch", "recipe"])
        for entry in entries:
            for run in entry.runs:
                writer.writerow(
                    [entry.dataset, entry.model, entry.family or "", run.seed]
                    + [run.results[key] for key in COLUMNS]
                    + [_csv_value(run.results.get("best_epoch")), entry.recipe]
                )
    with open(directory / "summary.csv", "w", newline="") as file:
        writer = csv.writer(file)
        stat_columns = [f"{key}_{part}" for key in COLUMNS for part in ("mean", "std")]
        reference_columns = [f"study_{metric}" for metric in reference_results.METRICS]
        header = ["dataset", "model", "family", "seeds", *stat_columns, *reference_columns]
        writer.writerow([*header, "recipe"])
        for entry in entries:
            stats = [entry.stat(key) for key in COLUMNS]
            reference = entry.reference() or {}
            writer.writerow(
                [entry.dataset, entry.model, entry.family or "", len(entry.runs)]
                + [_csv_value(value) for stat in stats for value in (stat.mean, stat.std)]
                + [_csv_value(reference.get(metric)) for metric in reference_results.METRICS]
                + [entry.recipe]
            )


# ---------------------------------------------------------------------------- summary


def within_noise(a: Entry, b: Entry) -> bool | None:
    """|mean accuracy difference| <= sqrt(std_a² + std_b²); None when a side has one seed."""
    sa, sb = a.accuracy.std, b.accuracy.std
    if sa is None or sb is None:
        return None
    return abs(a.accuracy.mean - b.accuracy.mean) <= math.hypot(sa, sb)


def best_entry(entries: Sequence[Entry]) -> Entry:
    """Highest mean test accuracy; on a tie, the fewer FLOPs."""
    return max(entries, key=lambda e: (e.accuracy.mean, -e.stat("flops").mean))


def cheapest_near_best(entries: Sequence[Entry]) -> Entry:
    """Fewest FLOPs per image (then parameters) among models within one point of the best."""
    best = best_entry(entries).accuracy.mean
    near = [e for e in entries if e.accuracy.mean >= best - ONE_POINT - 1e-12]
    return min(near, key=lambda e: (e.stat("flops").mean, e.stat("params").mean))


def _accuracy_text(entry: Entry) -> str:
    return f"{entry.model} ({_percent(entry.accuracy)} %)"


def summary_lines(entries: Sequence[Entry]) -> list[str]:
    best = best_entry(entries)
    cheapest = cheapest_near_best(entries)
    lines = [f"- Best: **{_accuracy_text(best)}**."]
    if cheapest is best:
        lines.append("- Cheapest within one point of the best: the best itself.")
    else:
        lines.append(
            f"- Cheapest within one point of the best: **{_accuracy_text(cheapest)}**, "
            f"{_si(cheapest.stat('flops').mean)} FLOPs/image against "
            f"{_si(best.stat('flops').mean)}."
        )
    single_seed = [e.model for e in entries if e.accuracy.std is None]
    pairs = [(a, b) for a, b in itertools.combinations(entries, 2) if within_noise(a, b) is True]
    ties_with_best = [b.model for a, b in pairs if a is best] + [
        a.model for a, b in pairs if b is best
    ]
    if len(single_seed) < len(entries):
        tied = ", ".join(ties_with_best) if ties_with_best else "none"
        lines.append(f"- Within seed noise of the best: {tied}.")
        listed = "; ".join(
            f"{a.model} vs {b.model} (Δ {100 * abs(a.accuracy.mean - b.accuracy.mean):.2f})"
            for a, b in pairs
        )
        lines.append(f"- All pairs within seed noise: {listed or 'none'}.")
    if single_seed:
        lines.append(
            f"- One seed only, so seed noise is not estimated for: {', '.join(single_seed)}."
        )
    differences = {
        e.model: 100 * (e.accuracy.mean - e.reference()["accuracy"])
        for e in entries
        if e.reference() is not None
    }
    if differences:
        above = [m for m, d in differences.items() if d > 100 * ONE_POINT]
        below = [m for m, d in differences.items() if d < -100 * ONE_POINT]
        lines.append(
            f"- Against the study: accuracy {_signed(statistics.fmean(differences.values()))} "
            f"points on average over {len(differences)} models; more than one point above: "
            f"{', '.join(above) or 'none'}; more than one point below: "
            f"{', '.join(below) or 'none'}."
        )
    return lines


# ---------------------------------------------------------------------------- figures


def model_colors(models: Iterable[str]) -> dict[str, Any]:
    """One colour per model, the same in every figure, in the study's model order."""
    palette = matplotlib.colormaps["tab10"].colors
    ordered = sorted(set(models), key=_model_order)
    return {model: palette[i % len(palette)] for i, model in enumerate(ordered)}


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, bbox_inches="tight")


def _seed_curves(entry: Entry, key: str, scale: float) -> np.ndarray:
    """`history[key]` of each seed's run, one row per seed, cut to the shortest and scaled."""
    curves = [run.results["history"][key] for run in entry.runs]
    length = min(len(curve) for curve in curves)
    return scale * np.array([curve[:length] for curve in curves], dtype=float)


def plot_validation_curves(entries: Sequence[Entry], colors: dict[str, Any], path: Path) -> None:
    """Validation accuracy and loss per epoch, one line per model (mean, band = ± std)."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    accuracy_axes, loss_axes = figure.subplots(1, 2)
    for entry in entries:
        for axes, key, scale in (
            (accuracy_axes, "val_accuracy", 100.0),
            (loss_axes, "val_loss", 1.0),
        ):
            values = _seed_curves(entry, key, scale)
            epochs = np.arange(1, values.shape[1] + 1)
            mean = values.mean(axis=0)
            color = colors[entry.model]
            axes.plot(epochs, mean, marker="o", markersize=3, color=color, label=entry.model)
            if len(values) > 1:
                std = values.std(axis=0, ddof=1)
                axes.fill_between(epochs, mean - std, mean + std, alpha=0.2, color=color)
    accuracy_axes.set(xlabel="epoch", ylabel="validation accuracy (%)")
    loss_axes.set(xlabel="epoch", ylabel="validation loss")
    for axes in (accuracy_axes, loss_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    accuracy_axes.legend(fontsize="small")
    figure.suptitle(f"{_panel_title(entries)}: validation curves")
    _save(figure, path)


def plot_recipe_curves(
    panels: Sequence[Sequence[Entry]], colors: dict[str, Any], path: Path
) -> None:
    """One dataset's validation accuracy and training loss per epoch under every recipe on one
    set of axes: a colour per model, a line style per recipe (mean over seeds)."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    accuracy_axes, loss_axes = figure.subplots(1, 2)
    styles = ("-", "--", ":", "-.")
    for index, entries in enumerate(panels):
        for entry in entries:
            for axes, key, scale in (
                (accuracy_axes, "val_accuracy", 100.0),
                (loss_axes, "train_loss", 1.0),
            ):
                mean = _seed_curves(entry, key, scale).mean(axis=0)
                axes.plot(
                    np.arange(1, len(mean) + 1),
                    mean,
                    styles[index % len(styles)],
                    marker="o",
                    markersize=3,
                    color=colors[entry.model],
                    label=f"{entry.model}, {entry.recipe}",
                )
    accuracy_axes.set(xlabel="epoch", ylabel="validation accuracy (%)")
    loss_axes.set(xlabel="epoch", ylabel="training loss (the recipe's own)")
    for axes in (accuracy_axes, loss_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    accuracy_axes.legend(fontsize="small")
    figure.suptitle(f"{_title(panels[0][0].dataset)}: the recipes compared")
    _save(figure, path)


def plot_accuracy_against(
    grouped: dict[str, list[Entry]], key: str, label: str, colors: dict[str, Any], path: Path
) -> None:
    """Test accuracy against `key` (params or flops) on a log axis, one panel per dataset."""
    figure = Figure(figsize=(4.6 * len(grouped), 4.2), layout="constrained")
    panels = np.atleast_1d(figure.subplots(1, len(grouped)))
    for axes, entries in zip(panels, grouped.values(), strict=True):
        for entry in entries:
            accuracy = entry.accuracy
            x = entry.stat(key).mean
            y_error = None if accuracy.std is None else 100 * accuracy.std
            axes.errorbar(
                x, 100 * accuracy.mean, yerr=y_error, fmt="o", capsize=3, color=colors[entry.model]
            )
            axes.annotate(
                entry.model,
                (x, 100 * accuracy.mean),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize="small",
            )
        axes.set_xscale("log")
        axes.margins(x=0.15, y=0.1)  # room for the labels of the outermost points
        axes.set(title=_panel_title(entries), xlabel=label, ylabel="test accuracy (%)")
        axes.grid(alpha=0.3)
    _save(figure, path)


def plot_accuracy_heatmap(grouped: dict[str, list[Entry]], path: Path) -> None:
    """Mean test accuracy, model by row and dataset by column; blank where not run."""
    datasets = list(grouped)
    models = sorted({e.model for entries in grouped.values() for e in entries}, key=_model_order)
    grid = np.full((len(models), len(datasets)), np.nan)
    for column, dataset in enumerate(datasets):
        for entry in grouped[dataset]:
            grid[models.index(entry.model), column] = 100 * entry.accuracy.mean
    figure = Figure(
        figsize=(1.6 * len(datasets) + 2.5, 0.5 * len(models) + 1.5), layout="constrained"
    )
    axes = figure.subplots()
    image = axes.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
    for (row, column), value in np.ndenumerate(grid):
        if not np.isnan(value):
            # viridis is dark at the low end and bright at the high end.
            color = "black" if image.norm(value) > 0.6 else "white"
            axes.text(column, row, f"{value:.2f}", ha="center", va="center", color=color)
    axes.set_xticks(range(len(datasets)), [_panel_title(grouped[d]) for d in datasets])
    axes.set_yticks(range(len(models)), models)
    axes.set_title("Test accuracy (%), mean over seeds")
    figure.colorbar(image, ax=axes)
    _save(figure, path)


def plot_confusion_matrix(run: Run, path: Path) -> None:
    """Counts, rows = true class, as the results file stores them."""
    matrix = np.asarray(run.results["confusion_matrix"], dtype=int)
    names = run.results["per_class"].get("names") or [str(i) for i in range(len(matrix))]
    figure = Figure(figsize=(6, 5.2), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    threshold = matrix.max() / 2
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=color)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set(xlabel="predicted", ylabel="true")
    recipe = "" if run.recipe == STUDY else f", {run.recipe} recipe"
    axes.set_title(f"{run.model} on {_title(run.dataset)}, seed {run.seed}{recipe}")
    figure.colorbar(image, ax=axes)
    _save(figure, path)


def confusion_path(run: Run) -> str:
    """Relative to the report, as report.md links it."""
    return f"{CONFUSION_DIR}/{run.model}_{panel_key(run.dataset, run.recipe)}_seed{run.seed}.png"


# ---------------------------------------------------------------------------- report


def _distinct(values: Iterable[Any]) -> str:
    unique = sorted({str(value) for value in values})
    text = ", ".join(unique)
    return f"{text} (differs across runs)" if len(unique) > 1 else text


def recipe_line(entries: Sequence[Entry]) -> str:
    """Which recipe produced a panel's table, and what it did, from the runs' own configs."""
    described = _distinct(
        recipes.describe(run.config, run.dataset) for entry in entries for run in entry.runs
    )
    return f"Recipe **{entries[0].recipe}**: {described}."


def _ranks(entries: Sequence[Entry]) -> dict[str, int]:
    """Model -> 1 for the highest mean test accuracy, 2 for the next, ..."""
    ordered = sorted(entries, key=lambda entry: -entry.accuracy.mean)
    return {entry.model: rank for rank, entry in enumerate(ordered, start=1)}


def ranking_table(panels: Sequence[Sequence[Entry]]) -> str:
    """One dataset's models by row, test accuracy and rank under each recipe by column."""
    header = ["Model"]
    for entries in panels:
        header += [f"{entries[0].recipe} %", f"{entries[0].recipe} rank"]
    models = sorted({e.model for entries in panels for e in entries}, key=_model_order)
    rows = []
    for model in models:
        row = [model]
        for entries in panels:
            by_model = {entry.model: entry for entry in entries}
            if model in by_model:
                row += [_percent(by_model[model].accuracy), str(_ranks(entries)[model])]
            else:
                row += ["—", "—"]
        rows.append(row)
    return _markdown_table(header, rows)


def ranking_lines(panels: Sequence[Sequence[Entry]]) -> list[str]:
    """Each recipe's order of the models that every recipe trained, and whether it moved."""
    shared = set.intersection(*({entry.model for entry in entries} for entries in panels))
    orders = []
    for entries in panels:
        kept = [entry for entry in entries if entry.model in shared]
        orders.append([model for model, _ in sorted(_ranks(kept).items(), key=lambda i: i[1])])
    lines = [
        f"- Under the {entries[0].recipe} recipe: {' > '.join(order)}."
        for entries, order in zip(panels, orders, strict=True)
    ]
    if len(shared) < 2:
        lines.append("- Fewer than two models ran under every recipe: no ranking to compare.")
    elif all(order == orders[0] for order in orders):
        lines.append(f"- The ranking of these {len(shared)} models is the same under every recipe.")
    else:
        lines.append(f"- The ranking of these {len(shared)} models changes with the recipe.")
    return lines


def setup_lines(runs: Sequence[Run]) -> list[str]:
    """The schedule and environment the runs record, so a reader knows what was compared."""
    configs = [run.results.get("config", {}) for run in runs]
    lines = []
    for key in SCHEDULE_KEYS:
        values = [config[key] for config in configs if key in config]
        if values:
            lines.append(f"- `{key}`: {_distinct(values)}")
    environments = [run.results.get("environment", {}) for run in runs]
    for key in ("device_kind", "device_count", "jax", "flax"):
        values = [environment[key] for environment in environments if key in environment]
        if values:
            lines.append(f"- {key}: {_distinct(values)}")
    total = sum(float(run.results["train_time_s"]) for run in runs)
    lines.append(f"- Total training time over all runs: {_duration(total)}")
    return lines


def write_report(workdir: str | Path) -> Path:
    """Writes report.md, its figures and CSVs into `workdir`; returns the report's path."""
    directory = Path(workdir)
    runs = load_runs(directory)
    grouped = group_runs(runs)
    seeds = sorted({run.seed for run in runs})
    models = sorted({run.model for run in runs}, key=_model_order)

    by_dataset: dict[str, list[list[Entry]]] = {}
    for entries in grouped.values():
        by_dataset.setdefault(entries[0].dataset, []).append(entries)
    recipe_names = sorted({run.recipe for run in runs}, key=_recipe_order)

    write_csvs(directory, grouped)
    colors = model_colors(models)
    plot_accuracy_heatmap(grouped, directory / "accuracy_heatmap.png")
    plot_accuracy_against(
        grouped, "params", "parameters", colors, directory / "accuracy_vs_params.png"
    )
    plot_accuracy_against(
        grouped, "flops", "forward FLOPs per image", colors, directory / "accuracy_vs_flops.png"
    )
    for run in runs:
        plot_confusion_matrix(run, directory / confusion_path(run))

    parts = [
        "# CNN comparison study",
        f"{_count_of(runs, 'run')}: {_count_of(models, 'model')} ({', '.join(models)}) on "
        f"{_count_of(by_dataset, 'dataset')} ({', '.join(_title(d) for d in by_dataset)}), "
        f"{'seed' if len(seeds) == 1 else 'seeds'} {', '.join(map(str, seeds))}, "
        f"{_count_of(recipe_names, 'recipe')} ({', '.join(recipe_names)}). Generated by "
        "`python -m scripts.compare` from the results files in `seed_*/` (another recipe's "
        "in `{recipe}/seed_*/`); rebuild it with `--config.report_only=True`.",
        "Accuracy, precision, recall and F1 (macro over classes) are on the test set, in %. "
        "With several seeds a cell reads mean ± sample standard deviation over seeds. "
        "FLOPs count one forward pass on one image, a multiply-add as two. Training time is "
        "the wall time of all epochs, validation included; images/s is the training "
        "throughput without the first (compiling) step, on the device below.",
        "## Setup",
        "\n".join(setup_lines(runs)),
        "## Summary",
        "Rules: *best* is the highest mean test accuracy; *cheapest within one point* is the "
        "model with the fewest FLOPs per image whose mean accuracy is at most one percentage "
        "point below the best; two models are *within seed noise* when the difference of "
        "their mean accuracies is at most the combined standard deviation "
        "sqrt(std_a² + std_b²) of their seeds (needs two seeds or more for both).",
    ]
    for entries in grouped.values():
        parts.append(f"**{_panel_title(entries)}**\n\n" + "\n".join(summary_lines(entries)))
    for dataset, panels in by_dataset.items():
        if len(panels) > 1:
            lines = ranking_lines(panels)
            parts.append(f"**{_title(dataset)}, ranking by recipe**\n\n" + "\n".join(lines))

    for key, entries in grouped.items():
        curves = f"{key}_val_curves.png"
        plot_validation_curves(entries, colors, directory / curves)
        parts += [
            f"## {_panel_title(entries)}",
            recipe_line(entries),
            "### Results",
            results_table(entries),
        ]
        comparison = reference_table(entries)
        if comparison:
            parts += [
                "### Against the study's reported results",
                "Mean over seeds (ours), the study's value (two decimals in its write-up, "
                "so ± 0.5 points of rounding) and the difference in percentage points.",
                comparison,
            ]
        parts += [
            "### Validation curves",
            f"![{_panel_title(entries)} validation curves]({curves})",
            "### Confusion matrices",
            " · ".join(
                f"[{run.model} seed {run.seed}]({confusion_path(run)})"
                for entry in entries
                for run in entry.runs
            ),
        ]

    compared = {dataset: panels for dataset, panels in by_dataset.items() if len(panels) > 1}
    if compared:
        parts += [
            "## Does the recipe change the ranking?",
            "Test accuracy (%) and rank (1 = best mean test accuracy) of each model under each "
            "recipe, on the same budget.",
        ]
        for dataset, panels in compared.items():
            curves = f"{dataset}_recipes_curves.png"
            plot_recipe_curves(panels, colors, directory / curves)
            parts += [f"### {_title(dataset)}", ranking_table(panels)]
            parts.append("\n".join(ranking_lines(panels)))
            parts.append(
                f"![{_title(dataset)}: validation accuracy and training loss by recipe]({curves})"
                "\n\nThe training loss is each recipe's own: with label smoothing it cannot "
                "fall near 0, so compare its shape, and compare the recipes by validation "
                "accuracy."
            )

    parts += [
        "## Across datasets",
        "![test accuracy heatmap](accuracy_heatmap.png)",
        "![accuracy against parameters](accuracy_vs_params.png)",
        "![accuracy against FLOPs](accuracy_vs_flops.png)",
        "Per-run numbers: [results.csv](results.csv); means, standard deviations and the "
        "study's values: [summary.csv](summary.csv).",
    ]
    families = {reference_results.MODEL_FAMILY.get(model) for model in models}
    not_run = [family for family in reference_results.FAMILIES if family not in families]
    if not_run:
        parts.append(f"Study families with no run here: {', '.join(not_run)}.")
    unmatched = [model for model in models if model not in reference_results.MODEL_FAMILY]
    if unmatched:
        parts.append(f"Models with no counterpart in the study: {', '.join(unmatched)}.")

    report = directory / REPORT_NAME
    report.write_text("\n\n".join(parts) + "\n")
    return report
