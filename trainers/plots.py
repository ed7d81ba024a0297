"""Training curves, the figure a reader checks first for over- or under-fitting."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(history: dict[str, list[float]], title: str, path: Path) -> None:
    """Loss and accuracy against epoch, train and validation, side by side."""
    epochs = range(1, len(history["train_loss"]) + 1)
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric, label in (
        (loss_axis, "loss", "Loss"),
        (accuracy_axis, "accuracy", "Accuracy"),
    ):
        axis.plot(epochs, history[f"train_{metric}"], marker="o", label="train")
        axis.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        axis.set_xlabel("Epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    loss_axis.set_title("Cross-entropy loss")
    accuracy_axis.set_title("Accuracy")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
