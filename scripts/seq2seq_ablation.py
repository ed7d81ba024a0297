"""Attention ablation: `python -m scripts.seq2seq_ablation --workdir=DIR`.

Trains the reversal model with and without attention at lengths 10, 20 and 40, tests each on
its own length and the length-10 models on 20 and 40, and writes one markdown table to
DIR/seq2seq_ablation.md. Each cell trains in DIR/<variant>_len<L> through train_and_evaluate,
so a killed run resumes inside its cell and finished cells are read back, not retrained.
"""

import json
import time
from pathlib import Path

import ml_collections
from absl import flags
from ml_collections import config_flags

from jax_models.errors import UserError
from scripts.cli import run_main
from trainers.run_files import results_path
from trainers.seq2seq_train import train_and_evaluate

TRAIN_LENGTHS = (10, 20, 40)
GENERALIZATION_LENGTHS = (20, 40)  # test lengths for the models trained at length 10
VARIANTS = {"attention": True, "no_attention": False}

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Called only when run as a script, so importing this module (tests) defines no flags
    that would clash with scripts.train's."""
    flags.DEFINE_string("workdir", None, "Directory for the cells' runs and the table.")
    flags.mark_flag_as_required("workdir")
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Base seq2seq config (default configs/seq2seq.py); seq_len, use_attention and "
        "test_lengths are set per cell, and every cell trains on fixed lengths (min_seq_len=0).",
    )


def cell_config(
    base: ml_collections.ConfigDict, use_attention: bool, seq_len: int
) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict(base.to_dict())
    config.use_attention = use_attention
    config.seq_len = seq_len
    config.min_seq_len = 0
    config.test_lengths = GENERALIZATION_LENGTHS if seq_len == min(TRAIN_LENGTHS) else ()
    return config


def run_cell(config: ml_collections.ConfigDict, workdir: Path) -> dict:
    """Results of one cell: read back when finished with this config, trained otherwise."""
    results_file = results_path(workdir, "seq2seq")
    if results_file.is_file():
        results = json.loads(results_file.read_text())
        # JSON turns tuples into lists, so compare both sides in their JSON form.
        if results["config"] != json.loads(json.dumps(config.to_dict())):
            raise UserError(
                f"{workdir} holds results of a different config; delete it or choose another "
                "--workdir."
            )
        print(f"{workdir.name}: finished earlier, reusing its results", flush=True)
        return results
    print(f"{workdir.name}: training", flush=True)
    return train_and_evaluate(config, workdir)


def accuracies(results: dict, test_length: int) -> tuple[float, float]:
    if test_length == results["seq_len"]:
        return results["test_token_accuracy"], results["test_sequence_accuracy"]
    metrics = results["test_by_length"][str(test_length)]
    return metrics["token_accuracy"], metrics["sequence_accuracy"]


def ablation_table(base: ml_collections.ConfigDict, cells: dict[tuple[str, int], dict]) -> str:
    pairs = [(length, length) for length in TRAIN_LENGTHS] + [
        (min(TRAIN_LENGTHS), length) for length in GENERALIZATION_LENGTHS
    ]
    lines = [
        "# Seq2seq ablation: additive attention against a fixed context",
        "",
        f"Budget per cell: {base.num_samples} lists ({base.eval_fraction:.0%} held out for "
        f"validation) of tokens 0-{base.vocab_size - 1}, {base.num_epochs} epochs, batch "
        f"{base.batch_size}, Adam {base.learning_rate:g}, embedding {base.embedding_size}, "
        f"hidden {base.hidden_size}, attention {base.attention_size}, teacher forcing ratio "
        f"{base.teacher_forcing_ratio:g}, seed {base.seed}. The best epoch on validation is "
        "tested on a fresh set of lists, decoded greedily (no teacher forcing). Token "
        "accuracy counts the reversed list's tokens; exact match needs the whole list and "
        "the end token right.",
        "",
        "| Train length | Test length | Attention: token acc. | Attention: exact match "
        "| No attention: token acc. | No attention: exact match |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for train_length, test_length in pairs:
        row = [str(train_length), str(test_length)]
        for variant in VARIANTS:
            token, sequence = accuracies(cells[variant, train_length], test_length)
            row += [f"{token:.4f}", f"{sequence:.4f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Training time per cell (seconds, summed epochs on this machine):", ""]
    for (variant, length), results in cells.items():
        lines.append(
            f"- {variant.replace('_', ' ')}, length {length}: {results['train_time_s']:.0f} s, "
            f"best epoch {results['best_epoch']}/{results['epochs']}, "
            f"{results['params']:,} parameters"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    del argv  # run_main rejects positional arguments
    workdir = Path(FLAGS.workdir)
    base = FLAGS.config
    start = time.perf_counter()
    cells = {
        (variant, length): run_cell(
            cell_config(base, use_attention, length), workdir / f"{variant}_len{length}"
        )
        for variant, use_attention in VARIANTS.items()
        for length in TRAIN_LENGTHS
    }
    table_path = workdir / "seq2seq_ablation.md"
    table_path.write_text(ablation_table(base, cells))
    print(f"Wrote {table_path} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    define_flags()
    base_config = str(Path(__file__).resolve().parents[1] / "configs" / "seq2seq.py")
    run_main(main, help_config=base_config, default_config=base_config)
