"""The clu confusion-matrix metric and the figures derived from it, against scikit-learn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from trainers.metrics import EvalMetrics, classification_report


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    num_classes, num = 7, 300
    labels = rng.integers(0, num_classes, num)
    logits = rng.normal(size=(num, num_classes))
    logits[np.arange(num), labels] += rng.random(num) * 2  # better than chance, not perfect
    logits[:, 3] -= 10  # class 3 is never predicted: zero division must give 0
    mask = rng.random(num) > 0.15
    losses = rng.random(num)

    step = jax.jit(
        lambda lo, la, m, lo_: EvalMetrics.single_from_model_output(
            loss=lo_, logits=lo, labels=la, mask=m
        )
    )
    metrics = None
    for part in np.array_split(np.arange(num), 4):  # merged over batches, as in evaluation
        batch = step(
            jnp.asarray(logits[part]),
            jnp.asarray(labels[part]),
            jnp.asarray(mask[part]),
            jnp.asarray(losses[part]),
        )
        metrics = batch if metrics is None else metrics.merge(batch)
    computed = metrics.compute()

    true, predicted = labels[mask], logits.argmax(axis=1)[mask]
    classes = list(range(num_classes))
    np.testing.assert_array_equal(
        computed["confusion"], confusion_matrix(true, predicted, labels=classes)
    )
    assert computed["accuracy"] == pytest.approx(accuracy_score(true, predicted), abs=1e-6)
    assert computed["loss"] == pytest.approx(losses[mask].mean(), rel=1e-5)

    report = classification_report(computed["confusion"])
    for average in ("macro", "weighted"):
        expected = precision_recall_fscore_support(
            true, predicted, labels=classes, average=average, zero_division=0
        )[:3]
        got = report if average == "macro" else report["weighted"]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(expected)
    per_class = precision_recall_fscore_support(
        true, predicted, labels=classes, average=None, zero_division=0
    )
    for index, key in enumerate(("precision", "recall", "f1", "support")):
        np.testing.assert_allclose(report["per_class"][key], per_class[index])
    assert report["per_class"]["precision"][3] == 0.0
