"""The files a run keeps in its workdir, named in this one place.

A classifier run, prefix `{model}_{dataset}`, writes `{prefix}_results.json`,
`{prefix}_curves.png` and checkpoints in `{prefix}_model/`; the seq2seq run, prefix `seq2seq`,
writes `seq2seq_results.json`, `seq2seq_loss.png`, `seq2seq_attention.png` when it uses
attention, and `seq2seq_model/`. The trainers write them and `scripts.train` reports them
through here, so the two cannot disagree.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import ml_collections

from trainers.checkpoint import Checkpointer, checkpoint_dir


def run_prefix(config: ml_collections.ConfigDict) -> str:
    """What a run's file names start with: `{model}_{dataset}`, or `seq2seq`."""
    if config.get("task", "classification") == "seq2seq":
        return "seq2seq"
    return f"{config.model}_{config.dataset}"


@dataclass(frozen=True)
class RunFiles:
    """Paths of one run's results, figures and checkpoint directory."""

    results: Path
    curves: Path
    checkpoints: Path
    attention: Path | None = None  # seq2seq with attention only


def run_files(config: ml_collections.ConfigDict, workdir: str | Path) -> RunFiles:
    """The files the run of `config` writes in `workdir` (spelled as given, for printing)."""
    workdir = Path(workdir)
    prefix = run_prefix(config)
    if prefix == "seq2seq":
        return RunFiles(
            results=workdir / f"{prefix}_results.json",
            curves=workdir / f"{prefix}_loss.png",
            checkpoints=checkpoint_dir(workdir, prefix),
            attention=workdir / f"{prefix}_attention.png" if config.use_attention else None,
        )
    return RunFiles(
        results=workdir / f"{prefix}_results.json",
        curves=workdir / f"{prefix}_curves.png",
        checkpoints=checkpoint_dir(workdir, prefix),
    )


def finished_results(files: RunFiles, num_epochs: int) -> dict | None:
    """The results of a run whose latest checkpoint already reaches `num_epochs`, else None.

    The results file must describe that checkpoint (its `epochs` equal the checkpoint's step):
    a run killed between its last save and writing results leaves an older file, or none, and
    must still evaluate. Every process of a multi-host run reads the same shared workdir, as
    orbax's checkpoints already require, so all take the same branch.
    """
    if not (files.results.is_file() and files.checkpoints.is_dir()):
        return None
    checkpointer = Checkpointer(files.checkpoints)
    latest = checkpointer.latest_step()
    checkpointer.close()
    if latest is None or latest < num_epochs:
        return None
    results = json.loads(files.results.read_text())
    return results if results.get("epochs") == latest else None
