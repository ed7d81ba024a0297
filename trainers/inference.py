"""Loads classifiers that `scripts.train` wrote, for prediction outside training (the app)."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx

import jax_models
from jax_models.errors import UserError
from trainers.checkpoint import Checkpointer, checkpoint_dir
from trainers.data import dataset_info
from trainers.run_files import results_path


@dataclass
class Classifier:
    """A trained model in eval mode with what is needed to feed it and name its outputs."""

    name: str
    model: nnx.Module
    class_names: list[str]
    input_shape: tuple[int, int, int]
    test_accuracy: float

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for a uint8 NHWC batch shaped like the training images."""
        images = np.asarray(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.input_shape:
            raise UserError(
                f"{self.name} expects images of shape {self.input_shape}, got "
                f"{tuple(images.shape[1:])}; resize the image first."
            )
        return np.asarray(_probabilities(self.model, images.astype(np.float32) / 255.0))


@nnx.jit
def _probabilities(model: nnx.Module, images: jax.Array) -> jax.Array:
    return jax.nn.softmax(model(images), axis=-1)


def restore_best(
    checkpoints: Path, like: Callable[[int], dict], *, best_metric: str, train_again: str
) -> dict:
    """The best-on-validation checkpoint in `checkpoints`, or one UserError saying why not.

    The Checkpointer already words a damaged step and a checkpoint that does not fit the model;
    anything else it lets through comes from orbax or tensorstore reading a folder that is not
    (or no longer) an orbax checkpoint, and is worded here rather than shown as their repr.
    """
    checkpointer = None
    try:
        checkpointer = Checkpointer(checkpoints, best_metric=best_metric)
        best = checkpointer.restore_best(like)
    except UserError:
        raise
    except Exception as error:  # orbax raises bare Exceptions, ValueErrors and OSErrors alike
        raise UserError(
            f"The checkpoint in {checkpoints} cannot be read: it is damaged or not an orbax "
            f"checkpoint written by scripts.train; {train_again}"
        ) from error
    finally:
        if checkpointer is not None:
            checkpointer.close()
    if best is None:
        raise UserError(f"{checkpoints} holds no checkpoint; {train_again}")
    return best[1]


def load_classifier(workdir: str | Path, prefix: str) -> Classifier:
    """Restores the best-on-validation checkpoint of run `prefix` in `workdir`."""
    path = Path(workdir).expanduser().absolute()
    results_file = results_path(path, prefix)
    train_again = (
        f"train it again with python -m scripts.train --config=configs/default.py --workdir={path}."
    )
    try:
        results = json.loads(results_file.read_text())
        config = results["config"]
        model_name, dataset = config["model"], config["dataset"]
        seed, learning_rate = config["seed"], config["learning_rate"]
        test_accuracy = float(results["test_accuracy"])
    except FileNotFoundError:
        raise UserError(f"No trained model {prefix!r} in {path}; {train_again}") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{results_file} is not a results file of scripts.train ({error}); {train_again}"
        ) from error
    if model_name not in jax_models.registry.names():
        raise UserError(
            f"Run {prefix!r} in {path} was trained with model {model_name!r}, which this version "
            f"of jax_models does not define; serve it with the code that trained it."
        )
    info = dataset_info(dataset)
    model = jax_models.create(
        model_name, num_classes=info.num_classes, input_shape=info.image_shape, seed=seed
    )
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
    restored = restore_best(
        checkpoint_dir(path, prefix),
        lambda _: {"model": nnx.state(model), "optimizer": nnx.state(optimizer)},
        best_metric="val_accuracy",
        train_again=train_again,
    )
    nnx.update(model, restored["model"])
    model.eval()
    return Classifier(
        name=prefix,
        model=model,
        class_names=list(info.class_names),
        input_shape=info.image_shape,
        test_accuracy=test_accuracy,
    )
