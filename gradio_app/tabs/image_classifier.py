"""Image classifier: the CNNs that `scripts.train` wrote, on an uploaded, example or drawn image.

The runs are found below `--checkpoints` from their results files (`gradio_app.runs`), and a
model is restored on its first request, so the tab lists what was trained at start-up without
opening a checkpoint. Uploads reach the handler unprocessed (`preprocess=False`): Gradio's
own decoding would fail on a file that is not an image before the handler could say so.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gradio_app.config import AppConfig
from gradio_app.feedback import warn
from gradio_app.loaders import MODELS, first_line
from gradio_app.runs import CLASSIFICATION, choose_run, find_runs, listing_status
from gradio_app.tabs.common import notice_area, queue_settings, run_reported
from jax_models.errors import UserError

TASK = "image_classifier"
TOP_CLASSES = 5
_INK_MARGIN = 1.4  # MNIST digits fill about 20 of 28 pixels; keep a similar border
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
# Test image 0 of each dataset, as the network sees it (scripts/app_examples.py writes them).
EXAMPLE_IMAGES: tuple[tuple[Path, str], ...] = (
    (EXAMPLES_DIR / "mnist_test_0.png", "MNIST test image 0: a 7"),
    (EXAMPLES_DIR / "fashion_mnist_test_0.png", "Fashion-MNIST test image 0: an ankle boot"),
    (EXAMPLES_DIR / "cifar10_test_0.png", "CIFAR-10 test image 0: a cat"),
)
NOT_AN_IMAGE = (
    "That file is not an image the classifier can read; upload a PNG, JPEG, GIF, BMP or WebP "
    "picture."
)
CANVAS_SIZE = (280, 280)


def load_trained_classifier(model_ref: str) -> Any:
    """`model_ref` is a run's absolute file prefix, `{workdir}/{model}_{dataset}`."""
    from trainers.inference import load_classifier

    path = Path(model_ref)
    return load_classifier(path.parent, path.name)


def explain_failure(task: str, model_ref: str, error: Exception) -> str:
    """The loader's own sentence for what it recognised, a plain one for anything else."""
    if isinstance(error, UserError):
        return str(error)
    return f"The trained classifier `{model_ref}` could not be loaded: {first_line(error)}."


def read_picture(payload: dict[str, Any] | None) -> np.ndarray | None:
    """The uploaded file as an RGB or RGBA array, or a UserError saying it is not an image.

    `payload` is the upload as Gradio serialises it: a dict whose `path` is the file Gradio
    keeps in its upload folder.
    """
    if payload is None:
        return None
    path = payload.get("path")
    if not path:
        raise UserError(NOT_AN_IMAGE)
    try:
        with Image.open(path) as picture:
            picture.load()
            has_alpha = "A" in picture.getbands() or "transparency" in picture.info
            return np.asarray(picture.convert("RGBA" if has_alpha else "RGB"))
    except Image.DecompressionBombError as error:  # Pillow's guard against huge decodes
        raise UserError("That image is too large to classify; upload a smaller one.") from error
    # Pillow raises SyntaxError, too, for some damaged files it has begun to decode.
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise UserError(NOT_AN_IMAGE) from error


def to_model_input(image: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Turns any picture into what the network was trained on: uint8, `input_shape`.

    Grayscale datasets (MNIST, Fashion-MNIST) have light objects on a dark background and
    fill most of the frame, so a dark-on-light picture is inverted, and one of another size
    is cropped to its ink; a picture already at the input size (a test-set image) is kept.
    """
    height, width, channels = input_shape
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if picture.mode in ("RGBA", "LA", "P"):
        background = Image.new("RGBA", picture.size, "white")
        picture = Image.alpha_composite(background, picture.convert("RGBA"))
    if channels == 3:
        fitted = ImageOps.fit(picture.convert("RGB"), (width, height), Image.Resampling.LANCZOS)
        return np.asarray(fitted, dtype=np.uint8)
    gray = picture.convert("L")
    border = np.concatenate(
        [np.asarray(gray)[[0, -1], :].ravel(), np.asarray(gray)[:, [0, -1]].ravel()]
    )
    if border.mean() > 127:
        gray = ImageOps.invert(gray)
    if gray.size != (width, height):
        ink = gray.point(lambda value: 255 if value > 32 else 0).getbbox()
        if ink:
            gray = gray.crop(ink)
            side = int(max(gray.size) * _INK_MARGIN)
            gray = ImageOps.pad(gray, (side, side), color=0)
        gray = gray.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(gray, dtype=np.uint8)[..., None]


def classify(
    checkpoints: Path | None, image: np.ndarray | None, run_key: str | None
) -> tuple[dict[str, float] | None, np.ndarray | None]:
    """The top classes with probabilities, and the image as the network saw it."""
    if image is None:
        warn("Upload, pick or draw an image first.")
        return None, None
    run = choose_run(checkpoints, run_key, CLASSIFICATION)
    classifier = MODELS.get(TASK, run.model_ref, load_trained_classifier, explain_failure)
    model_input = to_model_input(image, classifier.input_shape)
    probabilities = classifier.predict(model_input[None])[0]
    top = np.argsort(probabilities)[::-1][:TOP_CLASSES]
    labels = {classifier.class_names[i]: float(probabilities[i]) for i in top}
    return labels, model_input.squeeze(-1) if model_input.shape[-1] == 1 else model_input


def classify_upload(
    checkpoints: Path | None, upload: dict[str, Any] | None, run_key: str | None = None
) -> tuple[dict[str, float] | None, np.ndarray | None]:
    """The `/classify_image` API: an uploaded file, opened here (see `read_picture`)."""
    return classify(checkpoints, read_picture(upload), run_key)


def blank_canvas() -> dict[str, Any]:
    """The sketchpad's starting value: a white page to draw on.

    With a background the editor starts with the brush selected; without one it starts on its
    image tool and asks to "select the draw tool to start", so a first stroke draws nothing.
    """
    return {
        "background": np.full((*CANVAS_SIZE, 3), 255, np.uint8),
        "layers": [],
        "composite": None,
    }


def has_ink(picture: np.ndarray) -> bool:
    """Whether a drawing holds a visible mark darker than the white page."""
    pixels = np.asarray(picture)
    visible = pixels[..., -1] > 0 if pixels.shape[-1] == 4 else np.ones(pixels.shape[:2], bool)
    return bool((visible & (pixels[..., :3].min(axis=-1) < 250)).any())


def classify_drawing(
    checkpoints: Path | None, drawing: dict | None, run_key: str | None = None
) -> tuple[dict[str, float] | None, np.ndarray | None]:
    """The sketchpad hands over layers; the composite is what the user sees."""
    composite = None if drawing is None else drawing.get("composite")
    if composite is not None and not has_ink(composite):
        composite = None  # nothing drawn yet: the page is blank
    return classify(checkpoints, composite, run_key)


def _listing(checkpoints: Path | None) -> tuple[list[tuple[str, str]], str]:
    """The dropdown's (label, run) choices and the status line, read from the results files."""
    listing = find_runs(checkpoints, CLASSIFICATION)
    return listing.choices(), listing_status(checkpoints, CLASSIFICATION, listing)


def _relist(checkpoints: Path | None) -> tuple[gr.Dropdown, str]:
    choices, message = _listing(checkpoints)
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None), message


def build(config: AppConfig) -> None:
    checkpoints = config.checkpoints
    choices, message = _listing(checkpoints)
    status = gr.Markdown(message, elem_classes=["model-status"])
    with gr.Row():
        # Custom values let the API name a run trained after start-up; `choose_run` checks them.
        run_key = gr.Dropdown(
            choices,
            value=choices[0][1] if choices else None,
            label="Trained classifier",
            allow_custom_value=True,
        )
        refresh = gr.Button("Refresh list", size="sm", scale=0)
    with gr.Row():
        with gr.Column():
            with gr.Tab("Upload"):
                # A fixed height, or a 28-pixel test image collapses the box to a strip.
                upload = gr.Image(
                    label="Image", type="filepath", sources=["upload", "clipboard"], height=240
                )
                classify_upload_button = gr.Button("Classify", variant="primary")
                gr.Examples(
                    [[str(path)] for path, _ in EXAMPLE_IMAGES],
                    inputs=[upload],
                    example_labels=[label for _, label in EXAMPLE_IMAGES],
                    label="One test image per dataset",
                )
            with gr.Tab("Draw"):
                drawing = gr.Sketchpad(
                    blank_canvas(), label="Draw", type="numpy", canvas_size=CANVAS_SIZE
                )
                classify_drawing_button = gr.Button("Classify drawing", variant="primary")
        with gr.Column():
            labels = gr.Label(label="Prediction", num_top_classes=TOP_CLASSES)
            # PNG: the page shows exactly the pixels the network got (webp would blur them)
            seen = gr.Image(
                label="What the network sees", interactive=False, height=160, format="png"
            )
            notice = notice_area()

    # The tab's events, all here.
    settings = queue_settings(config, TASK)
    run_reported(
        classify_upload_button.click,
        TASK,
        partial(classify_upload, checkpoints),
        inputs=[upload, run_key],
        outputs=[labels, seen],
        notice=notice,
        api_name="classify_image",
        preprocess=False,  # the handler opens the upload itself (see the module docstring)
        **settings,
    )
    run_reported(
        classify_drawing_button.click,
        TASK,
        partial(classify_drawing, checkpoints),
        inputs=[drawing, run_key],
        outputs=[labels, seen],
        notice=notice,
        api_visibility="private",
        **settings,
    )
    refresh.click(
        partial(_relist, checkpoints), outputs=[run_key, status], api_visibility="private"
    )
