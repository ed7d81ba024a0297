"""Stops a diverged run before its epoch is checkpointed; the CNN and seq2seq trainers share it.

The rule: an epoch has diverged when its mean training loss or its validation loss is not
finite, or when its mean training loss exceeds `divergence_factor` (a config key, 10 by
default) times ln(K). ln(K) is the cross-entropy of a uniform guess over the K output classes
(the CNN's classes; the seq2seq model's output tokens, special tokens included), which is
about where every freshly initialised run starts, so a loss ten times higher means the
optimiser is making the model worse, not better: typically a learning rate far too high
(`--config.learning_rate=1e6` drives the loss to around 1e36 with every number still finite).

The check runs after the epoch's validation and before its save, so a diverged model never
becomes the latest or the best checkpoint that evaluation and the app restore.
"""

import math

import ml_collections

from jax_models.errors import UserError
from trainers.checkpoint import Checkpointer


def divergence_limit(num_classes: int, factor: float) -> float:
    """The mean training loss above which an epoch counts as diverged."""
    return factor * math.log(num_classes)


def check_divergence(
    config: ml_collections.ConfigDict,
    epoch: int,
    train_loss: float,
    val_loss: float,
    *,
    num_classes: int,
    checkpointer: Checkpointer,
) -> None:
    """Raises a UserError naming the epoch, the loss, the rule broken, the last good checkpoint
    and the fix when `epoch` has diverged; returns quietly otherwise."""
    limit = divergence_limit(num_classes, config.divergence_factor)
    exploded = False
    if not math.isfinite(train_loss):
        what = f"the train loss is {train_loss}, not a finite number"
    elif not math.isfinite(val_loss):
        what = f"the validation loss is {val_loss}, not a finite number"
    elif train_loss > limit:
        exploded = True
        what = (
            f"the train loss {train_loss:.4g} exceeds {limit:.4g}, divergence_factor "
            f"{config.divergence_factor:g} times ln({num_classes}), the loss of a uniform guess "
            f"over the {num_classes} classes where training starts"
        )
    else:
        return
    latest = checkpointer.latest_step()
    if latest is None:
        kept = "no checkpoint was written"
        again = "run again"
    else:
        kept = f"the last good checkpoint (epoch {latest}) stays in {checkpointer.directory}"
        # Resuming that checkpoint under another learning rate is refused as another run.
        again = "train again with a new --workdir"
    fix = f"lower --config.learning_rate (now {config.learning_rate:g}) and {again}"
    if exploded:
        fix += ", or raise --config.divergence_factor if such a loss is expected"
    raise UserError(
        f"Training diverged in epoch {epoch}: {what}. The run stopped before saving this "
        f"epoch, and {kept}; {fix}."
    )
