"""The tabs for this project's own models: a classifier and a reverser trained here for a few
steps by `scripts.train`'s own code, then driven as Python functions and through
`gradio_client`; and what those tabs say when there is nothing trained yet."""

import numpy as np
import pytest
from flax import nnx
from gradio_client import Client, handle_file
from PIL import Image

import jax_models
from configs import default as cnn_configs
from configs import seq2seq as seq2seq_configs
from gradio_app.config import AppConfig
from gradio_app.loaders import ModelUnavailable
from gradio_app.tabs import image_classifier, sequence_reversal
from jax_models.errors import UserError
from tests import app_fixtures
from tests.fake_data import write_idx_dataset
from trainers import seq2seq_train
from trainers.train import train_and_evaluate

CLASSIFIER = "app_tiny_linear_mnist"


@jax_models.register("app_tiny_linear")
class TinyLinear(nnx.Module):
    """The smallest classifier `scripts.train` can train: it compiles in a second."""

    def __init__(self, *, num_classes: int, input_shape: tuple[int, int, int], rngs: nnx.Rngs):
        self.head = nnx.Linear(int(np.prod(input_shape)), num_classes, rngs=rngs)

    def __call__(self, x):
        return self.head(x.reshape(x.shape[0], -1))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One workdir holding a classifier and a reverser, as `--checkpoints` expects."""
    root = tmp_path_factory.mktemp("trained")
    write_idx_dataset(root / "data", "mnist", num_train=64, num_test=32)
    workdir = root / "runs"
    cnn = cnn_configs.get_config()
    cnn.update(
        model="app_tiny_linear",
        data_dir=str(root / "data"),
        data_source="files",
        num_epochs=1,
        batch_size=16,
        eval_batch_size=32,
    )
    train_and_evaluate(cnn, str(workdir))
    reverser = seq2seq_configs.get_config()
    reverser.update(
        seq_len=4,
        num_samples=100,
        num_epochs=1,
        hidden_size=8,
        embedding_size=4,
        attention_size=8,
        batch_size=50,
        eval_batch_size=50,
        num_attention_examples=1,
    )
    reverser.test_lengths = ()
    seq2seq_train.train_and_evaluate(reverser, workdir)
    return workdir


def digit_drawing() -> np.ndarray:
    """A black stroke on a transparent 80x80 canvas, as the sketchpad hands it over."""
    canvas = np.zeros((80, 80, 4), np.uint8)
    canvas[20:60, 38:44] = (0, 0, 0, 255)
    return canvas


# Preprocessing, no model needed.


def test_a_dark_on_light_drawing_becomes_a_light_mnist_digit_filling_the_frame():
    seen = image_classifier.to_model_input(digit_drawing(), (28, 28, 1))
    assert seen.shape == (28, 28, 1) and seen.dtype == np.uint8
    assert seen[0, 0, 0] == 0 and seen.max() > 200  # background dark, ink light
    rows = np.flatnonzero(seen[..., 0].max(axis=1) > 128)
    assert rows.max() - rows.min() >= 14  # cropped to the ink: the stroke spans half the frame


def test_colour_pictures_are_fitted_to_the_colour_input():
    photo = np.random.default_rng(0).integers(0, 255, (50, 90, 3), dtype=np.uint8)
    assert image_classifier.to_model_input(photo, (32, 32, 3)).shape == (32, 32, 3)


# Nothing trained: the tabs say how to train, and never crash.


def test_without_checkpoints_the_tabs_say_how_to_train():
    with pytest.raises(ModelUnavailable, match="python -m scripts.train --config=configs/default"):
        image_classifier.classify_image(None, digit_drawing(), None)
    with pytest.raises(ModelUnavailable, match="python -m scripts.train --config=configs/seq2seq"):
        sequence_reversal.reverse_sequence(None, "1 2 3")
    assert "No trained classifier found" in image_classifier._listing(None)[1]


def test_an_empty_workdir_is_explained(tmp_path):
    with pytest.raises(ModelUnavailable, match=f"No trained seq2seq model in {tmp_path}"):
        sequence_reversal.reverse_sequence(tmp_path, "1 2 3")
    assert image_classifier.available_classifiers(tmp_path) == []


def test_blank_inputs_warn():
    with pytest.warns(UserWarning, match="Upload or draw an image first"):
        assert image_classifier.classify_drawing(None, {"composite": np.zeros((8, 8, 4))}, None)
    with pytest.warns(UserWarning, match="Type some integers"):
        assert sequence_reversal.reverse_sequence(None, " ") == ("", "", None)


def test_tokens_must_be_whole_numbers():
    assert sequence_reversal.parse_tokens("3, 1 4,1") == [3, 1, 4, 1]
    with pytest.raises(UserError, match=r"\['x', '2.5'\] are not"):
        sequence_reversal.parse_tokens("1 x 2.5")


# Trained models, as Python functions.


def test_classifier_gives_the_top_classes_of_a_drawing(checkpoints):
    assert CLASSIFIER in image_classifier.available_classifiers(checkpoints)
    labels, seen = image_classifier.classify_drawing(
        checkpoints, {"composite": digit_drawing()}, CLASSIFIER
    )
    assert len(labels) == image_classifier.TOP_CLASSES
    assert set(labels) <= {str(digit) for digit in range(10)}
    assert list(labels.values()) == sorted(labels.values(), reverse=True)
    assert 0.0 < sum(labels.values()) <= 1.0 + 1e-6
    assert seen.shape == (28, 28)


def test_reverser_gives_tokens_a_verdict_and_an_attention_map(checkpoints):
    output, verdict, figure = sequence_reversal.reverse_sequence(checkpoints, "3 1 4 1")
    tokens = [int(token) for token in output.split()]
    assert all(0 <= token < 10 for token in tokens)
    assert verdict.startswith("✅" if tokens == [1, 4, 1, 3] else "❌")
    heatmap = figure.axes[0].images[0].get_array()
    assert heatmap.shape == (len(tokens), 4)
    with pytest.raises(UserError, match="trained on lists of exactly 4 tokens"):
        sequence_reversal.reverse_sequence(checkpoints, "1 2")


# Trained models, through the served app.


@pytest.fixture(scope="module")
def client(checkpoints):
    with app_fixtures.running_app(AppConfig(checkpoints=checkpoints)) as url:
        yield Client(url, verbose=False)


def test_classify_image_and_reverse_sequence_over_the_api(client, tmp_path):
    image = tmp_path / "digit.png"
    Image.fromarray(digit_drawing()).save(image)
    labels, seen = client.predict(handle_file(str(image)), CLASSIFIER, api_name="/classify_image")
    assert len(labels["confidences"]) == image_classifier.TOP_CLASSES
    assert Image.open(seen).size == (28, 28)
    output, verdict, plot = client.predict("3 1 4 1", api_name="/reverse_sequence")
    assert len(output.split()) >= 1 and verdict
    assert plot["type"] == "matplotlib"
