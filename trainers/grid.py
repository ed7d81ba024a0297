"""The study's grid: every (model, dataset, seed) pair through `train_and_evaluate`, resumably.

Each seed has its own workdir, `DIR/seed_{S}/`, so every pair keeps the training pipeline's
file names; a grid trained with another recipe than the study's (`--config.recipe=strong`)
keeps its own under `DIR/{recipe}/seed_{S}/`, so one report covers both. A pair whose results
file exists is finished and skipped; any other pair is handed to `train_and_evaluate`, which
resumes from its latest checkpoint if a killed run left one. So rerunning the same command
after an interruption only does the work that is left.
"""

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import ml_collections

import jax_models
from jax_models.errors import UserError
from trainers import report, train
from trainers.checkpoint import checkpoint_dir
from trainers.data import DATASETS
from trainers.recipes import RECIPE_KEYS, STUDY_RECIPE
from trainers.run_files import results_path, seed_workdir

STUDY = STUDY_RECIPE["recipe"]
# Set per pair by the grid, so they are not part of the shared training settings.
GRID_KEYS = ("model", "dataset", "seed")


@dataclasses.dataclass(frozen=True)
class Pair:
    model: str
    dataset: str
    seed: int
    recipe: str = STUDY

    def __str__(self) -> str:
        text = f"{self.model} on {self.dataset}, seed {self.seed}"
        return text if self.recipe == STUDY else f"{text}, {self.recipe} recipe"

    def workdir(self, root: Path) -> Path:
        return seed_workdir(recipe_dir(root, self.recipe), self.seed)

    def results_path(self, root: Path) -> Path:
        return results_path(self.workdir(root), f"{self.model}_{self.dataset}")


def recipe_dir(root: Path, recipe: str) -> Path:
    """Where a grid of `recipe` keeps its seeds: the study's in `root` itself, as always."""
    return Path(root) if recipe == STUDY else Path(root) / recipe


def grid_recipe(config: ml_collections.ConfigDict) -> str:
    """The recipe the grid trains with, one of `config.recipes`."""
    recipe, known = config.recipe, list(config.recipes)
    if recipe not in known:
        raise UserError(
            f"Unknown recipe {recipe!r}; choose one of: {', '.join(known)} (--config.recipe)."
        )
    return recipe


def parse_list(value: str | Sequence, what: str) -> list[str]:
    """'a,b' or ['a', 'b'] -> ['a', 'b'], blanks and repeats dropped, order kept."""
    items = value.split(",") if isinstance(value, str) else [str(item) for item in value]
    names = list(dict.fromkeys(item.strip() for item in items if item.strip()))
    if not names:
        raise UserError(f"The study needs at least one {what}; set --config.{what}s=a,b.")
    return names


def _check_known(names: list[str], known: Sequence[str], what: str) -> None:
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UserError(
            f"Unknown {what} {', '.join(unknown)}; choose from: {', '.join(known)} "
            f"(--config.{what}s)."
        )


def grid_pairs(config: ml_collections.ConfigDict) -> list[Pair]:
    """Seed by seed, dataset by dataset, so the report is complete for one seed first."""
    models = parse_list(config.models, "model")
    datasets = parse_list(config.datasets, "dataset")
    _check_known(models, jax_models.names(), "model")  # names(): also models registered late
    _check_known(datasets, list(DATASETS), "dataset")
    seeds = []
    for seed in parse_list(config.seeds, "seed"):
        if not seed.isdigit():
            raise UserError(f"Seed {seed!r} is not a non-negative integer; set --config.seeds=0,1.")
        seeds.append(int(seed))
    recipe = grid_recipe(config)
    return [
        Pair(model, dataset, seed, recipe)
        for seed in seeds
        for dataset in datasets
        for model in models
    ]


def run_config(config: ml_collections.ConfigDict, pair: Pair) -> ml_collections.ConfigDict:
    """The study's shared training settings, the keys of the pair's recipe, and the pair's
    model, dataset and seed."""
    run = ml_collections.ConfigDict(config.train.to_dict())
    run.update(config.recipes[pair.recipe].to_dict())
    run.recipe = pair.recipe
    for key in GRID_KEYS:
        setattr(run, key, getattr(pair, key))
    run.lock()
    return run


def check_finished_matches(pair: Pair, root: Path, run: ml_collections.ConfigDict) -> None:
    """Refuses to count a finished pair trained on another schedule or recipe as part of this
    study; a results file older than the recipe keys was trained with the study's."""
    path = pair.results_path(root)
    recorded = {**STUDY_RECIPE, **report.load_results(path).get("config", {})}
    differing = [
        f"{key} {recorded[key]} (asked: {run[key]})"
        for key in dict.fromkeys((*report.SCHEDULE_KEYS, *RECIPE_KEYS))
        if key in recorded and key in run and recorded[key] != run[key]
    ]
    if differing:
        raise UserError(
            f"{path} was trained with {', '.join(differing)}; use another --workdir for this "
            "schedule or recipe, or delete that file to retrain the pair."
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Progress:
    """Pair i of n, elapsed time and an ETA, one line per pair across the whole grid.

    A pair still to train is estimated by the mean time of the pairs already trained in this
    session with the same model and dataset, else the same model, else all of them: models
    differ by orders of magnitude in cost, datasets by much less.
    """

    def __init__(self, pairs: Sequence[Pair], finished: set[Pair]):
        self.pairs = list(pairs)
        self.finished = finished
        self.durations: dict[Pair, float] = {}
        self.start = time.monotonic()

    def record(self, pair: Pair, seconds: float) -> None:
        self.durations[pair] = seconds

    def estimate(self, pair: Pair) -> float | None:
        for same in (
            lambda done: done.model == pair.model and done.dataset == pair.dataset,
            lambda done: done.model == pair.model,
            lambda done: True,
        ):
            times = [seconds for done, seconds in self.durations.items() if same(done)]
            if times:
                return sum(times) / len(times)
        return None

    def eta(self, index: int) -> str:
        """Time left for the pairs from `index` on that still need training."""
        todo = [pair for pair in self.pairs[index:] if pair not in self.finished]
        estimates = [self.estimate(pair) for pair in todo]
        if any(estimate is None for estimate in estimates):
            return "unknown until a pair has trained" if todo else "0:00:00"
        return _clock(sum(estimates))

    def line(self, index: int, status: str) -> str:
        pair = self.pairs[index]
        elapsed = _clock(time.monotonic() - self.start)
        return (
            f"[compare] pair {index + 1}/{len(self.pairs)}: {pair}, {status} | "
            f"elapsed {elapsed} | ETA {self.eta(index)}"
        )


def train_grid(config: ml_collections.ConfigDict, workdir: str | Path) -> list[str]:
    """Trains every unfinished pair; returns one message per pair that failed on a UserError.

    A failing pair (bad data for one dataset, a diverged run) does not stop the others.
    """
    root = Path(workdir)
    pairs = grid_pairs(config)
    finished = {pair for pair in pairs if pair.results_path(root).is_file()}
    for pair in finished:
        check_finished_matches(pair, root, run_config(config, pair))
    progress = Progress(pairs, finished)
    failures = []
    for index, pair in enumerate(pairs):
        if pair in finished:
            print(progress.line(index, "finished before, skipped"), flush=True)
            continue
        run = run_config(config, pair)
        checkpoints = checkpoint_dir(pair.workdir(root), train.run_prefix(run))
        status = "resuming" if checkpoints.is_dir() else "training"
        print(progress.line(index, status), flush=True)
        start = time.monotonic()
        try:
            train.train_and_evaluate(run, str(pair.workdir(root)))
        except UserError as error:
            failures.append(f"{pair}: {error}")
            print(f"[compare] FAILED {pair}: {error}", flush=True)
            continue
        progress.record(pair, time.monotonic() - start)
    trained = len(progress.durations)
    print(
        f"[compare] grid done: {trained} trained, {len(finished)} skipped, {len(failures)} "
        f"failed in {_clock(time.monotonic() - progress.start)}",
        flush=True,
    )
    return failures


def run_study(config: ml_collections.ConfigDict, workdir: str | Path) -> Path:
    """Trains the grid (unless `report_only`), then writes the report; returns its path.

    Failed pairs are raised as one UserError after the report of the others is written. With
    several processes (multi-host), the first writes the report, as it writes the results.
    """
    failures = [] if config.report_only else train_grid(config, workdir)
    if failures and not report.has_results(workdir):
        raise UserError(f"Every pair failed, the first with: {failures[0]}")
    path = Path(workdir) / report.REPORT_NAME
    if jax.process_index() == 0:
        report.write_report(workdir)
    if failures:
        raise UserError(
            f"{len(failures)} pair(s) failed ({'; '.join(failures)}); the report at {path} "
            "covers the others. Fix the cause and rerun the same command to train only those."
        )
    return path
