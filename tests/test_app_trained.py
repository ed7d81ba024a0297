"""The tabs for this project's own models, on runs trained here for a few steps by
`scripts.train`'s own code and laid out as the README's commands leave them (`runs/{run}/`,
`runs/seq2seq/`, and an ablation's second reverser further down), served with
`--checkpoints runs`: as Python functions, through `gradio_client`, with damaged and
incompatible copies of the runs, and with nothing trained at all."""

import json
import os
import shutil

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from gradio_app.config import AppConfig
from gradio_app.tabs import image_classifier, sequence_reversal
from jax_models.errors import UserError
from scripts import app_examples
from tests import app_fixtures, trained_runs
from tests.fake_data import write_cifar_dataset, write_idx_dataset
from tests.trained_runs import CLASSIFIER, REVERSER, train_reverser

readme_runs = trained_runs.readme_runs  # the session fixture, shared with the browser test
FIXED_REVERSER = "seq2seq_ablation/no_attention_len4/seq2seq"  # exactly 4 tokens, no attention
EXAMPLE_PATHS = [str(path) for path, _ in image_classifier.EXAMPLE_IMAGES]


@pytest.fixture(scope="module")
def checkpoints(readme_runs, tmp_path_factory):
    """`runs/`: the README's two trainings plus an ablation's cell, a second reverser."""
    runs = tmp_path_factory.mktemp("trained") / "runs"
    shutil.copytree(readme_runs, runs)
    ablation_cell = runs / "seq2seq_ablation" / "no_attention_len4"
    train_reverser(ablation_cell, seq_len=4, min_seq_len=0, use_attention=False)
    return runs


@pytest.fixture(scope="module")
def damaged(checkpoints, tmp_path_factory):
    """Copies of the trained runs, each broken in one way a person's files can be."""
    root = tmp_path_factory.mktemp("damaged")
    for name in ("corrupt", "foreign_metrics", "other_shapes", "unknown_model"):
        shutil.copytree(checkpoints / "tiny_mnist", root / name)
    for path in (root / "corrupt" / "app_tiny_linear_mnist_model").rglob("*"):
        if path.is_file():
            path.write_bytes(b"not an orbax file")
    for path in (root / "foreign_metrics" / "app_tiny_linear_mnist_model").rglob("metrics/metrics"):
        path.write_text("{}")  # JSON, but without the validation accuracy orbax ranks steps by
    for name, model in (("other_shapes", "lenet5"), ("unknown_model", "no_such_net")):
        results_file = root / name / "app_tiny_linear_mnist_results.json"
        results = json.loads(results_file.read_text())
        results["config"]["model"] = model
        results_file.write_text(json.dumps(results))
    shutil.copytree(checkpoints / "seq2seq", root / "seq2seq")
    results_file = root / "seq2seq" / "seq2seq_results.json"
    results = json.loads(results_file.read_text())
    results["config"]["hidden_size"] = 16
    results_file.write_text(json.dumps(results))
    return root


def digit_drawing() -> np.ndarray:
    """A black stroke on a transparent 80x80 canvas, as the sketchpad hands it over."""
    canvas = np.zeros((80, 80, 4), np.uint8)
    canvas[20:60, 38:44] = (0, 0, 0, 255)
    return canvas


# Preprocessing and the bundled examples, no model needed.


def test_a_dark_on_light_drawing_becomes_a_light_mnist_digit_filling_the_frame():
    seen = image_classifier.to_model_input(digit_drawing(), (28, 28, 1))
    assert seen.shape == (28, 28, 1) and seen.dtype == np.uint8
    assert seen[0, 0, 0] == 0 and seen.max() > 200  # background dark, ink light
    rows = np.flatnonzero(seen[..., 0].max(axis=1) > 128)
    assert rows.max() - rows.min() >= 14  # cropped to the ink: the stroke spans half the frame


def test_colour_pictures_are_fitted_to_the_colour_input():
    photo = np.random.default_rng(0).integers(0, 255, (50, 90, 3), dtype=np.uint8)
    assert image_classifier.to_model_input(photo, (32, 32, 3)).shape == (32, 32, 3)


def test_the_bundled_examples_are_small_test_images_that_reach_the_network_unchanged():
    sizes = {"mnist": (28, 28), "fashion_mnist": (28, 28), "cifar10": (32, 32)}
    for path, caption in image_classifier.EXAMPLE_IMAGES:
        dataset = path.name.removesuffix("_test_0.png")
        assert path.stat().st_size < 4096 and "test image 0" in caption
        with Image.open(path) as picture:
            assert picture.size == sizes[dataset]
            assert picture.mode == ("RGB" if dataset == "cifar10" else "L")
            pixels = np.asarray(picture)
        upload = image_classifier.read_picture({"path": str(path)})
        shape = (*sizes[dataset], 3 if dataset == "cifar10" else 1)
        np.testing.assert_array_equal(
            image_classifier.to_model_input(upload, shape), pixels.reshape(shape)
        )


def test_the_examples_are_written_from_test_image_0_of_each_dataset(tmp_path):
    data = {name: write_idx_dataset(tmp_path, name) for name in ("mnist", "fashion_mnist")}
    data["cifar10"] = write_cifar_dataset(tmp_path)
    app_examples.main(["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    for path, _ in image_classifier.EXAMPLE_IMAGES:
        dataset = path.name.removesuffix("_test_0.png")
        with Image.open(tmp_path / "out" / path.name) as written:
            pixels = np.asarray(written)
        np.testing.assert_array_equal(pixels, data[dataset]["test"][0][0].squeeze())


def test_a_file_that_is_not_an_image_gets_its_own_sentence(tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    with pytest.raises(UserError) as raised:
        image_classifier.read_picture({"path": str(notes)})
    assert str(raised.value) == image_classifier.NOT_AN_IMAGE
    assert image_classifier.read_picture(None) is None


def test_tokens_are_read_as_a_person_types_them():
    assert sequence_reversal.parse_tokens("3, 1 4,1") == [3, 1, 4, 1]
    assert sequence_reversal.parse_tokens(" [3, 1; 4] ") == [3, 1, 4]
    assert sequence_reversal.parse_tokens("(7)") == [7]
    with pytest.raises(UserError, match=r"\['x', '2.5'\] are not"):
        sequence_reversal.parse_tokens("1 x 2.5")


# Nothing trained: the tabs say how to train, and never crash.


def test_without_checkpoints_the_tabs_say_how_to_train():
    with pytest.raises(UserError, match="python -m scripts.train --config=configs/default"):
        image_classifier.classify(None, digit_drawing(), None)
    with pytest.raises(UserError, match="python -m scripts.train --config=configs/seq2seq"):
        sequence_reversal.reverse_sequence(None, "1 2 3")
    assert "No trained classifier found" in image_classifier._listing(None)[1]
    assert sequence_reversal.describe(None, None).startswith("No trained sequence reverser")


def test_an_empty_folder_is_explained(tmp_path):
    with pytest.raises(UserError, match=f"No trained sequence reverser found below `{tmp_path}`"):
        sequence_reversal.reverse_sequence(tmp_path, "1 2 3")
    assert image_classifier._listing(tmp_path)[0] == []


def test_blank_inputs_warn():
    white_page = np.full((8, 8, 4), 255, np.uint8)  # the canvas after a stroke was undone
    for blank in (np.zeros((8, 8, 4), np.uint8), white_page):
        with pytest.warns(UserWarning, match="Upload, pick or draw an image first"):
            result = image_classifier.classify_drawing(None, {"composite": blank}, None)
        assert result == (None, None)
    assert image_classifier.has_ink(digit_drawing())
    with pytest.warns(UserWarning, match="Type some integers"):
        assert sequence_reversal.reverse_sequence(None, " ") == ("", "", None)


# Trained models, as Python functions.


def test_classifier_gives_the_top_classes_of_a_drawing(checkpoints):
    labels, seen = image_classifier.classify_drawing(
        checkpoints, {"composite": digit_drawing()}, CLASSIFIER
    )
    assert len(labels) == image_classifier.TOP_CLASSES
    assert set(labels) <= {str(digit) for digit in range(10)}
    assert list(labels.values()) == sorted(labels.values(), reverse=True)
    assert 0.0 < sum(labels.values()) <= 1.0 + 1e-6
    assert seen.shape == (28, 28)


def test_reverser_gives_tokens_a_verdict_and_an_attention_map_for_every_accepted_length(
    checkpoints,
):
    for length in range(1, 6):
        tokens = list(range(length))
        output, verdict, figure = sequence_reversal.reverse_sequence(
            checkpoints, " ".join(map(str, tokens)), REVERSER
        )
        produced = [int(token) for token in output.split()]
        assert all(0 <= token < 10 for token in produced)
        assert verdict.startswith("✅" if produced == tokens[::-1] else "❌")
        if produced:
            assert figure.axes[0].images[0].get_array().shape == (len(produced), length)
    with pytest.raises(UserError, match="trained on lists of between 1 and 5 tokens; got 6"):
        sequence_reversal.reverse_sequence(checkpoints, "1 2 3 4 5 6", REVERSER)


def test_the_input_hint_comes_from_each_runs_config(checkpoints):
    hint = sequence_reversal.input_hint
    assert hint(sequence_reversal._chosen(checkpoints, REVERSER)) == (
        "This model takes lists of 1–5 whole numbers from 0 to 9, separated by spaces or commas."
    )
    assert hint(sequence_reversal._chosen(checkpoints, FIXED_REVERSER)).startswith(
        "This model takes lists of 4 whole numbers from 0 to 9"
    )


# Trained models, through the app served with `--checkpoints runs`.


@pytest.fixture(scope="module")
def client(checkpoints):
    with app_fixtures.running_app(AppConfig(checkpoints=checkpoints)) as url:
        yield Client(url, verbose=False)


def component(client: Client, kind: str, label: str | None = None) -> list[dict]:
    """The props of the page's components of one kind (and label), in page order."""
    return [
        entry["props"]
        for entry in client.config["components"]
        if entry["type"] == kind and (label is None or entry["props"].get("label") == label)
    ]


def test_the_readmes_two_trainings_are_listed_and_served(client):
    (classifiers,) = component(client, "dropdown", "Trained classifier")
    (accuracy,) = (label for label, _ in classifiers["choices"])
    assert [value for _, value in classifiers["choices"]] == [CLASSIFIER]
    assert accuracy.startswith("app_tiny_linear on MNIST, ") and accuracy.endswith(
        "% test accuracy — tiny_mnist/"
    )
    (reversers,) = component(client, "dropdown", "Trained reverser")
    assert [value for _, value in reversers["choices"]] == [REVERSER, FIXED_REVERSER]
    assert reversers["visible"] is True  # two runs: a choice to make
    (integers,) = component(client, "textbox", "Integers")
    assert integers["info"] == (
        "This model takes lists of 1–5 whole numbers from 0 to 9, separated by spaces or commas."
    )
    # Each tab serves its first run when the API call names none.
    labels, seen = client.predict(handle_file(EXAMPLE_PATHS[0]), api_name="/classify_image")
    assert len(labels["confidences"]) == image_classifier.TOP_CLASSES
    output, verdict, plot = client.predict("3 1 4 1 5", api_name="/reverse_sequence")
    assert verdict and plot["type"] == "matplotlib"


def test_every_project_tabs_first_example_runs_as_it_is(client):
    (image_examples,) = component(client, "dataset", "One test image per dataset")
    (sequence_examples,) = component(client, "dataset", "Lists to reverse")
    assert image_examples["samples"][0][0]["orig_name"] == "mnist_test_0.png"
    labels, seen = client.predict(
        handle_file(EXAMPLE_PATHS[0]), CLASSIFIER, api_name="/classify_image"
    )
    assert labels["label"] in {str(digit) for digit in range(10)}
    with Image.open(seen) as picture, Image.open(EXAMPLE_PATHS[0]) as example:
        np.testing.assert_array_equal(np.asarray(picture.convert("L")), np.asarray(example))
    assert sequence_examples["samples"][0] == ["3 1 4 1 5"]
    output, verdict, plot = client.predict("3 1 4 1 5", REVERSER, api_name="/reverse_sequence")
    produced = [int(token) for token in output.split()]
    assert verdict.startswith("✅" if produced == [5, 1, 4, 1, 3] else "❌")
    assert plot["type"] == "matplotlib"


def test_examples_of_other_datasets_still_classify_on_an_mnist_model(client):
    for path in EXAMPLE_PATHS[1:]:
        labels, seen = client.predict(handle_file(path), CLASSIFIER, api_name="/classify_image")
        assert {entry["label"] for entry in labels["confidences"]} <= {str(d) for d in range(10)}
        assert Image.open(seen).size == (28, 28)


def test_a_drawn_or_uploaded_picture_of_any_size_is_classified(client, tmp_path):
    image = tmp_path / "digit.png"
    Image.fromarray(digit_drawing()).save(image)
    labels, seen = client.predict(handle_file(str(image)), CLASSIFIER, api_name="/classify_image")
    assert len(labels["confidences"]) == image_classifier.TOP_CLASSES
    assert Image.open(seen).size == (28, 28)


def test_a_non_image_upload_is_one_plain_sentence(client, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("three, one, four")
    with pytest.raises(AppError) as raised:
        client.predict(handle_file(str(notes)), CLASSIFIER, api_name="/classify_image")
    assert str(raised.value) == image_classifier.NOT_AN_IMAGE


def test_a_run_outside_the_checkpoints_folder_is_refused(client, checkpoints):
    image = handle_file(EXAMPLE_PATHS[0])
    with pytest.raises(AppError) as raised:
        client.predict(image, "../elsewhere/app_tiny_linear_mnist", api_name="/classify_image")
    assert str(raised.value) == (
        f"../elsewhere/app_tiny_linear_mnist leads outside the checkpoints folder {checkpoints}; "
        "choose a run from the list."
    )
    with pytest.raises(AppError, match="^/etc/seq2seq leads outside the checkpoints folder"):
        client.predict("1 2 3", "/etc/seq2seq", api_name="/reverse_sequence")
    round_trip = f"../{checkpoints.name}/{CLASSIFIER}"  # leaves by .. and comes back in
    labels, _ = client.predict(image, round_trip, api_name="/classify_image")
    assert labels["confidences"]


def test_a_fixed_length_reverser_says_what_it_accepts_and_that_it_has_no_heatmap(client):
    with pytest.raises(AppError, match="trained on lists of exactly 4 tokens; got 5"):
        client.predict("3 1 4 1 5", FIXED_REVERSER, api_name="/reverse_sequence")
    output, verdict, plot = client.predict("3 1 4 1", FIXED_REVERSER, api_name="/reverse_sequence")
    assert "trained without attention, so there is no heatmap" in verdict and plot is None


def test_in_chromium_an_example_and_a_first_stroke_are_each_classified(client):
    """A person's clicks, each on a fresh page (so a prediction shown is that one's): an
    example image, and a drawing made with the brush the sketchpad starts with."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("REQUIRE_BROWSER"):  # CI installs Chromium: a skip there hides a gap
            pytest.fail("REQUIRE_BROWSER is set but Chromium is missing; apt-get install chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.set_default_timeout(30_000)
        prediction = page.get_by_test_id("label-output-value")

        page.goto(client.src)
        page.get_by_role("tab", name="Image classifier", exact=True).click()
        page.get_by_text("MNIST test image 0: a 7", exact=True).click()
        # The example reaches the input a moment after the click; classify only once it has.
        sync_api.expect(page.get_by_role("button", name="Remove Image")).to_be_visible()
        page.get_by_role("button", name="Classify", exact=True).click()
        sync_api.expect(prediction).to_be_visible(timeout=60_000)  # the first loads the model

        page.goto(client.src)
        page.get_by_role("tab", name="Image classifier", exact=True).click()
        page.get_by_role("tab", name="Draw", exact=True).click()
        canvas = page.get_by_role("tabpanel").locator("canvas").first
        sync_api.expect(canvas).to_be_visible()
        box = canvas.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 4
        page.mouse.move(x, y)
        page.mouse.down()
        for step in range(1, 21):
            page.mouse.move(x, y + step * box["height"] / 40)
        page.mouse.up()
        page.get_by_role("button", name="Classify drawing", exact=True).click()
        sync_api.expect(prediction).to_be_visible(timeout=60_000)
        browser.close()


# Damaged and incompatible runs, through the app.


@pytest.fixture(scope="module")
def damaged_client(damaged):
    with app_fixtures.running_app(AppConfig(checkpoints=damaged)) as url:
        yield Client(url, verbose=False)


def test_damaged_and_incompatible_checkpoints_each_get_their_own_sentence(damaged_client, damaged):
    image = handle_file(EXAMPLE_PATHS[0])

    def failure(run: str) -> str:
        with pytest.raises(AppError) as raised:
            damaged_client.predict(
                image, f"{run}/app_tiny_linear_mnist", api_name="/classify_image"
            )
        message = str(raised.value)
        assert "pybind11" not in message and "Traceback" not in message
        return message

    corrupt = damaged / "corrupt" / "app_tiny_linear_mnist_model"
    assert failure("corrupt").startswith(f"No intact checkpoint in {corrupt} (epoch 1: ")
    assert failure("foreign_metrics") == (
        f"The checkpoint in {damaged / 'foreign_metrics' / 'app_tiny_linear_mnist_model'} cannot "
        "be read: it is damaged or not an orbax checkpoint written by scripts.train; train it "
        "again with python -m scripts.train --config=configs/default.py "
        f"--workdir={damaged / 'foreign_metrics'}."
    )
    assert failure("other_shapes") == (
        f"Checkpoint of epoch 1 in {damaged / 'other_shapes' / 'app_tiny_linear_mnist_model'} "
        "does not match this model (other arrays or shapes); delete the directory or train with "
        "the config that wrote it."
    )
    assert failure("unknown_model").startswith(
        f"Run 'app_tiny_linear_mnist' in {damaged / 'unknown_model'} was trained with model "
        "'no_such_net', which this version of jax_models does not define"
    )
    with pytest.raises(AppError, match="does not match this model"):
        damaged_client.predict("1 2 3", "seq2seq/seq2seq", api_name="/reverse_sequence")
