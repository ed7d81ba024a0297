"""Image classifier: the CNNs that `scripts.train` wrote, on an uploaded or drawn image.

The JAX code is imported only when a checkpoint directory is given, so the other tabs work
on a machine that has never trained a model.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, ImageOps

from gradio_app.config import AppConfig
from gradio_app.feedback import user_facing, warn
from gradio_app.loaders import MODELS, ModelUnavailable, first_line
from gradio_app.tabs.common import queue_settings

TASK = "image_classifier"
TOP_CLASSES = 5
_INK_MARGIN = 1.4  # MNIST digits fill about 20 of 28 pixels; keep a similar border


def train_hint(checkpoints: Path | None) -> str:
    workdir = checkpoints or Path("runs")
    return (
        "Train one with `python -m scripts.train --config=configs/default.py "
        f"--workdir={workdir} --config.model=lenet5 --config.dataset=mnist`, then start the "
        f"app with `python -m gradio_app --checkpoints {workdir}`."
    )


def available_classifiers(checkpoints: Path | None) -> list[str]:
    """The trained runs in `checkpoints` (none when no directory was given)."""
    if checkpoints is None:
        return []
    from trainers.inference import list_classifiers

    return list_classifiers(checkpoints)


def load_trained_classifier(run_dir: str) -> Any:
    """`run_dir` is `{workdir}/{model}_{dataset}`, the prefix of the files a run wrote."""
    from trainers.inference import load_classifier

    path = Path(run_dir)
    return load_classifier(path.parent, path.name)


def explain_failure(task: str, run_dir: str, error: Exception) -> str:
    workdir = Path(run_dir).parent
    return (
        f"The trained classifier `{Path(run_dir).name}` in `{workdir}` could not be loaded: "
        f"{first_line(error)}. {train_hint(workdir)}"
    )


def to_model_input(image: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Turns any picture into what the network was trained on: uint8, `input_shape`.

    Grayscale datasets (MNIST, Fashion-MNIST) have light objects on a dark background and
    fill most of the frame, so a dark-on-light drawing is inverted and cropped to its ink.
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
    ink = gray.point(lambda value: 255 if value > 32 else 0).getbbox()
    if ink:
        gray = gray.crop(ink)
        side = int(max(gray.size) * _INK_MARGIN)
        gray = ImageOps.pad(gray, (side, side), color=0)
    resized = gray.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)[..., None]


def classify_image(
    checkpoints: Path | None, image: np.ndarray | None, run_name: str | None
) -> tuple[dict[str, float] | None, np.ndarray | None]:
    """The top classes with probabilities, and the image as the network saw it."""
    if image is None:
        warn("Upload or draw an image first.")
        return None, None
    if checkpoints is None or not run_name:
        raise ModelUnavailable(f"No trained classifier is available. {train_hint(checkpoints)}")
    classifier = MODELS.get(
        TASK, str(checkpoints / run_name), load_trained_classifier, explain_failure
    )
    model_input = to_model_input(image, classifier.input_shape)
    probabilities = classifier.predict(model_input[None])[0]
    top = np.argsort(probabilities)[::-1][:TOP_CLASSES]
    labels = {classifier.class_names[i]: float(probabilities[i]) for i in top}
    return labels, model_input.squeeze(-1) if model_input.shape[-1] == 1 else model_input


def classify_drawing(
    checkpoints: Path | None, drawing: dict | None, run_name: str | None
) -> tuple[dict[str, float] | None, np.ndarray | None]:
    """The sketchpad hands over layers; the composite is what the user sees."""
    composite = None if drawing is None else drawing.get("composite")
    if composite is not None and not np.asarray(composite)[..., -1].any():
        composite = None  # a blank canvas is fully transparent
    return classify_image(checkpoints, composite, run_name)


def _checkpoint_status(checkpoints: Path | None, runs: list[str]) -> str:
    if runs:
        return f"Checkpoints: `{checkpoints}` — {len(runs)} trained classifier(s)."
    where = f"in `{checkpoints}`" if checkpoints else "(no `--checkpoints` directory given)"
    return f"No trained classifier found {where}. {train_hint(checkpoints)}"


def _listing(checkpoints: Path | None) -> tuple[list[str], str]:
    try:
        runs = available_classifiers(checkpoints)
    except Exception as error:  # e.g. JAX missing: this tab explains, the others carry on
        return [], f"Trained classifiers cannot be listed: {first_line(error)}."
    return runs, _checkpoint_status(checkpoints, runs)


def build(config: AppConfig) -> None:
    checkpoints = config.checkpoints
    runs, message = _listing(checkpoints)
    status = gr.Markdown(message, elem_classes=["model-status"])
    with gr.Row():
        run_name = gr.Dropdown(
            runs, value=runs[0] if runs else None, label="Trained model", allow_custom_value=True
        )
        refresh = gr.Button("Refresh list", size="sm")
    with gr.Row():
        with gr.Column():
            with gr.Tab("Upload"):
                upload = gr.Image(label="Image", type="numpy", sources=["upload", "clipboard"])
                classify_upload = gr.Button("Classify", variant="primary")
            with gr.Tab("Draw"):
                drawing = gr.Sketchpad(label="Draw", type="numpy", canvas_size=(280, 280))
                classify_sketch = gr.Button("Classify drawing", variant="primary")
        with gr.Column():
            labels = gr.Label(label="Prediction", num_top_classes=TOP_CLASSES)
            seen = gr.Image(label="What the network sees", interactive=False, height=160)
    settings = queue_settings(config, TASK)
    classify_upload.click(
        user_facing(TASK, partial(classify_image, checkpoints)),
        inputs=[upload, run_name],
        outputs=[labels, seen],
        api_name="classify_image",
        **settings,
    )
    classify_sketch.click(
        user_facing(TASK, partial(classify_drawing, checkpoints)),
        inputs=[drawing, run_name],
        outputs=[labels, seen],
        api_visibility="private",
        **settings,
    )

    def relist() -> tuple[gr.Dropdown, str]:
        fresh, text = _listing(checkpoints)
        return gr.Dropdown(choices=fresh, value=fresh[0] if fresh else None), text

    refresh.click(relist, outputs=[run_name, status], api_visibility="private")
