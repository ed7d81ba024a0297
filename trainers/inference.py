"""Loads classifiers that `scripts.train` wrote, for prediction outside training (the app)."""

import json
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
from trainers.run_files import RESULTS_SUFFIX, results_path


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


def list_classifiers(workdir: str | Path) -> list[str]:
    """Prefixes (`{model}_{dataset}`) in `workdir` that have both results and a checkpoint."""
    path = Path(workdir).expanduser()
    if not path.is_dir():
        return []
    found = []
    for results_file in path.glob(f"*{RESULTS_SUFFIX}"):
        prefix = results_file.name.removesuffix(RESULTS_SUFFIX)
        try:
            task = json.loads(results_file.read_text())["config"].get("task", "classification")
        except (OSError, ValueError, KeyError, AttributeError):
            continue  # not a results file of scripts.train
        if task == "classification" and checkpoint_dir(path, prefix).is_dir():
            found.append(prefix)
    return sorted(found)


def load_classifier(workdir: str | Path, prefix: str) -> Classifier:
    """Restores the best-on-validation checkpoint of run `prefix` in `workdir`."""
    path = Path(workdir).expanduser().absolute()
    results_file = results_path(path, prefix)
    if prefix not in list_classifiers(path):
        raise UserError(
            f"No trained model {prefix!r} in {path}; train one with python -m scripts.train "
            f"--config=configs/default.py --workdir={path}."
        )
    results = json.loads(results_file.read_text())
    config = results["config"]
    info = dataset_info(config["dataset"])
    model = jax_models.create(
        config["model"],
        num_classes=info.num_classes,
        input_shape=info.image_shape,
        seed=config["seed"],
    )
    optimizer = nnx.Optimizer(model, optax.adam(config["learning_rate"]), wrt=nnx.Param)
    checkpointer = Checkpointer(checkpoint_dir(path, prefix))
    try:
        best = checkpointer.restore_best(
            lambda _: {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}
        )
        if best is None:
            raise UserError(f"{path / f'{prefix}_model'} holds no checkpoint; train again.")
        _, restored = best
    finally:
        checkpointer.close()
    nnx.update(model, restored["model"])
    model.eval()
    return Classifier(
        name=prefix,
        model=model,
        class_names=list(info.class_names),
        input_shape=info.image_shape,
        test_accuracy=float(results["test_accuracy"]),
    )
