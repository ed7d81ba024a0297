"""The trained runs below the `--checkpoints` directory, found and described from their files.

`scripts.train` leaves `{prefix}_results.json` beside `{prefix}_model/` in its workdir, and a
person keeps one workdir a run (`runs/lenet5_mnist/`, `runs/seq2seq/`), a study's workdirs
(`runs/compare/seed_0/`) or an ablation's (`runs/seq2seq_ablation/attention_len10/`) below one
folder. Each run is found by its results file, read as JSON only, so the tabs list the runs
and their accepted inputs at start-up without opening a checkpoint. A run is named by the path
of its file prefix below that folder (`lenet5_mnist/lenet5_mnist`); a name that the page or
the API hands back is resolved inside the folder and refused when it, or a link in it, leads
outside.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jax_models.errors import UserError
from trainers.checkpoint import checkpoint_dir
from trainers.run_files import RESULTS_SUFFIX, results_path

LOGGER = logging.getLogger(__name__)
CLASSIFICATION = "classification"
SEQ2SEQ = "seq2seq"
MAX_DEPTH = 4  # runs/study/seed_0/ is two levels down; four leaves room without a full crawl
MAX_FOLDERS = 2000  # bounds the walk when --checkpoints points at a home directory
_RUN_NOUNS = {CLASSIFICATION: "trained classifier", SEQ2SEQ: "trained sequence reverser"}
_DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


@dataclass(frozen=True)
class TrainedRun:
    """One finished run, described by its results file."""

    key: str  # the run's file prefix below the checkpoints folder, in POSIX form
    workdir: Path  # absolute, links resolved
    prefix: str
    task: str
    config: Mapping[str, Any]
    accuracy: float  # test accuracy; token accuracy for seq2seq

    @property
    def model_ref(self) -> str:
        """The run's identity in the process-wide model cache: its absolute file prefix."""
        return str(self.workdir / self.prefix)

    @property
    def folder(self) -> str:
        """The run's workdir below the checkpoints folder, for labels (`./` for the folder)."""
        parent = Path(self.key).parent.as_posix()
        return "./" if parent == "." else f"{parent}/"

    def label(self) -> str:
        """What the dropdown shows: what was trained, how well, and where."""
        if self.task == SEQ2SEQ:
            kind = "with" if self.config.get("use_attention", True) else "without"
            return (
                f"seq2seq {kind} attention, lists of {accepted_lengths(self.config)} tokens "
                f"0–{self.vocab_size - 1}, {self.accuracy:.2%} token accuracy — {self.folder}"
            )
        model, dataset = str(self.config["model"]), str(self.config["dataset"])
        dataset = _DATASET_NAMES.get(dataset, dataset)
        return f"{model} on {dataset}, {self.accuracy:.2%} test accuracy — {self.folder}"

    @property
    def vocab_size(self) -> int:
        return int(self.config["vocab_size"])


def accepted_lengths(config: Mapping[str, Any]) -> str:
    """`1–20` for a run trained on lengths 1..20, `10` for one trained on 10 only."""
    longest = int(config["seq_len"])
    shortest = int(config.get("min_seq_len") or longest)
    return str(longest) if shortest == longest else f"{shortest}–{longest}"


@dataclass(frozen=True)
class Listing:
    """The runs of one task below the folder, and whether the walk saw all of it."""

    runs: tuple[TrainedRun, ...]
    complete: bool

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for a dropdown."""
        return [(run.label(), run.key) for run in self.runs]


def _resolved_inside(root: Path, workdir: Path, prefix: str) -> tuple[Path, Path, Path] | None:
    """Run `prefix`'s workdir, results file and checkpoint folder with links resolved, or None
    when any of them leads outside `root`. A name the file system refuses (too long, a NUL
    byte) raises OSError or ValueError."""
    paths = (workdir, results_path(workdir, prefix), checkpoint_dir(workdir, prefix))
    workdir, results_file, checkpoints = (path.resolve() for path in paths)
    if not all(path.is_relative_to(root) for path in (workdir, results_file, checkpoints)):
        return None
    return workdir, results_file, checkpoints


def _read_run(root: Path, results_file: Path) -> TrainedRun | None:
    """The run whose results file this is, or None for anything else (another JSON, a run
    still training, a copy with its checkpoints missing, a link leading outside `root`)."""
    prefix = results_file.name.removesuffix(RESULTS_SUFFIX)
    try:
        resolved = _resolved_inside(root, results_file.parent, prefix)
        if resolved is None or not (resolved[1].is_file() and resolved[2].is_dir()):
            return None
    except (OSError, ValueError):  # a name the file system refuses
        return None
    workdir = resolved[0]
    key = (workdir / prefix).relative_to(root).as_posix()
    try:
        results = json.loads(resolved[1].read_text())
        config = results["config"]
        task = config.get("task", CLASSIFICATION)
        accuracy = float(results["test_token_accuracy" if task == SEQ2SEQ else "test_accuracy"])
        run = TrainedRun(key, workdir, prefix, task, config, accuracy)
        run.label()  # every field the tab shows is there
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        LOGGER.warning("Skipping %s: not a results file that scripts.train wrote.", results_file)
        return None
    return run


def find_runs(root: Path | None, task: str) -> Listing:
    """Every finished run of `task` below `root`, in at most MAX_DEPTH levels of folders.

    Links to folders are not followed (a link cannot lead the walk outside or round in a
    circle); checkpoint folders and hidden folders are not entered. At most MAX_FOLDERS
    folders are read, so a folder holding far more than runs answers in a second.
    """
    if root is None:
        return Listing((), True)
    base = Path(root).expanduser().resolve()
    found: list[TrainedRun] = []
    pending = deque([(base, 0)])
    visited = 0
    while pending:
        if visited == MAX_FOLDERS:
            return Listing(tuple(found), False)
        folder, depth = pending.popleft()
        visited += 1
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue  # unreadable folder: its runs cannot be served anyway
        for entry in entries:
            if entry.name.endswith(RESULTS_SUFFIX):
                run = _read_run(base, Path(entry.path))
                if run is not None and run.task == task:
                    found.append(run)
            elif (
                depth < MAX_DEPTH
                and entry.is_dir(follow_symlinks=False)
                and not entry.name.startswith((".", "__"))
                and not entry.name.endswith("_model")
            ):
                pending.append((Path(entry.path), depth + 1))
    return Listing(tuple(sorted(found, key=lambda run: run.key)), True)


def train_hint(root: Path | None, task: str) -> str:
    """The two commands that put a run of `task` where `--checkpoints` finds it."""
    folder = root if root is not None else Path("runs")
    if task == SEQ2SEQ:
        config, workdir = "configs/seq2seq.py", folder / "seq2seq"
    else:
        config, workdir = "configs/default.py", folder / "lenet5_mnist"
    return (
        f"Train one with `python -m scripts.train --config={config} --workdir={workdir}`, then "
        f"start the app with `python -m gradio_app --checkpoints {folder}`."
    )


def listing_status(root: Path | None, task: str, listing: Listing) -> str:
    """One Markdown line: how many runs the tab found, or how to train one."""
    noun = _RUN_NOUNS[task]
    partial = (
        ""
        if listing.complete
        else f" Stopped looking after {MAX_FOLDERS} folders; point `--checkpoints` at the "
        "folder that holds your runs."
    )
    if listing.runs:
        count = len(listing.runs)
        return f"{count} {noun}{'s' if count > 1 else ''} below `{root}`.{partial}"
    where = f"below `{root}`" if root is not None else "(no `--checkpoints` folder given)"
    return f"No {noun} found {where}.{partial} {train_hint(root, task)}"


def choose_run(root: Path | None, key: str | None, task: str) -> TrainedRun:
    """The run named `key` below `root`, or the first one listed when `key` is empty.

    `key` comes from the page or the API, so it is resolved here and refused when it leads
    outside `root`; a run trained since the tab listed its runs is found all the same.
    """
    noun = _RUN_NOUNS[task]
    if root is None:
        raise UserError(
            f"No {noun} is available: no `--checkpoints` folder given. {train_hint(None, task)}"
        )
    if not key:
        runs = find_runs(root, task).runs
        if not runs:
            raise UserError(f"No {noun} found below `{root}`. {train_hint(root, task)}")
        return runs[0]
    not_found = UserError(
        f"There is no {noun} `{key}` below `{root}`; choose one from the list "
        "(Refresh list shows runs trained since the app started)."
    )
    base = Path(root).expanduser().resolve()
    candidate = Path(os.path.normpath(base / key))
    workdir, prefix = candidate.parent, candidate.name
    try:
        inside = _resolved_inside(base, workdir, prefix) is not None
    except (OSError, ValueError):  # a name no file system takes, e.g. one with a NUL byte
        raise not_found from None
    if not inside:
        raise UserError(
            f"`{key}` leads outside the checkpoints folder `{root}`; choose a run from the list."
        )
    run = _read_run(base, results_path(workdir, prefix))
    if run is None or run.task != task:
        raise not_found
    return run
