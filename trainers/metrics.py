"""clu metrics for classification, with a confusion matrix that precision, recall and F1 come from.

clu ships loss averages and accuracy but no per-class metric; a confusion matrix is the one
jit-safe sufficient statistic for all of them, so it is accumulated on device and the
derived figures are computed once on the host.
"""

import flax
import jax
import jax.numpy as jnp
import numpy as np
from clu import metrics as clu_metrics


@flax.struct.dataclass
class ConfusionMatrix(clu_metrics.Metric):
    """Counts of (true class, predicted class) pairs; rows are true classes."""

    counts: jax.Array

    @classmethod
    def from_model_output(
        cls, *, logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None, **_
    ) -> "ConfusionMatrix":
        num_classes = logits.shape[-1]
        weights = jnp.ones_like(labels) if mask is None else mask.astype(jnp.int32)
        predictions = jnp.argmax(logits, axis=-1)
        counts = jnp.zeros((num_classes, num_classes), jnp.int32)
        return cls(counts=counts.at[labels, predictions].add(weights))

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        return type(self)(counts=self.counts + other.counts)

    def reduce(self) -> "ConfusionMatrix":
        return type(self)(counts=self.counts.reshape(-1, *self.counts.shape[-2:]).sum(0))

    def compute(self) -> jax.Array:
        return self.counts


@flax.struct.dataclass
class EvalMetrics(clu_metrics.Collection):
    loss: clu_metrics.Average.from_output("loss")
    accuracy: clu_metrics.Accuracy
    confusion: ConfusionMatrix


@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection):
    loss: clu_metrics.Average.from_output("loss")
    accuracy: clu_metrics.Accuracy


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Division that gives 0 where the denominator is 0, as scikit-learn's zero_division=0."""
    return np.divide(
        numerator, denominator, out=np.zeros_like(numerator, float), where=denominator > 0
    )


def classification_report(confusion: np.ndarray) -> dict:
    """Macro and support-weighted precision, recall, F1 and per-class figures."""
    confusion = np.asarray(confusion, dtype=np.int64)
    true_positives = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    precision = _safe_divide(true_positives, confusion.sum(axis=0))
    recall = _safe_divide(true_positives, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    weights = support / max(support.sum(), 1)
    return {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "weighted": {
            "precision": float((precision * weights).sum()),
            "recall": float((recall * weights).sum()),
            "f1": float((f1 * weights).sum()),
        },
        "per_class": {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "support": support.tolist(),
        },
    }
