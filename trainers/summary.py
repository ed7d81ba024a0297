"""The few lines `scripts.train` ends with: the verdict of a run and where its files are.

A person reading a finished (or already finished) run should not have to open the results
JSON to learn how good the evaluated checkpoint is, nor guess where the curves went.
"""

from trainers.run_files import RunFiles


def format_duration(seconds: float) -> str:
    """`4.2 s`, `14 s`, `2 min 14 s` or `1 h 03 min`: precise where it matters, short beyond."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def percent(fraction: float) -> str:
    return f"{100 * fraction:.2f} %"


def verdict(results: dict) -> str:
    """One line of test figures of the evaluated checkpoint, classifier or seq2seq."""
    checkpoint = f"(checkpoint of epoch {results['best_epoch']}, best on validation)"
    if results.get("task") == "seq2seq":
        variant = "attention" if results["use_attention"] else "no attention"
        shortest = results.get("config", {}).get("min_seq_len", 0)
        lengths = f"{shortest} to {results['seq_len']}" if shortest else f"{results['seq_len']}"
        return (
            f"seq2seq reversal ({variant}, lists of {lengths}): "
            f"greedy token accuracy {percent(results['test_token_accuracy'])}, "
            f"exact match {percent(results['test_sequence_accuracy'])}, "
            f"test loss {results['test_loss']:.4f} {checkpoint}"
        )
    return (
        f"{results['model']} on {results['dataset']}: "
        f"test accuracy {percent(results['test_accuracy'])}, "
        f"macro F1 {percent(results['f1'])}, "
        f"test loss {results['test_loss']:.4f} {checkpoint}"
    )


def format_summary(results: dict, files: RunFiles, wall_s: float) -> str:
    """The verdict, the wall time of this command, and the run's files, labels aligned."""
    paths = {
        "results": files.results,
        "curves": files.curves,
        "attention": files.attention,
        "checkpoint": f"{files.checkpoints}/",
    }
    return "\n".join(
        [
            verdict(results),
            f"wall time {format_duration(wall_s)}",
            *(f"{label:<11} {path}" for label, path in paths.items() if path is not None),
        ]
    )
