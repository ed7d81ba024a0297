"""Image generation: a diffusers text-to-image pipeline with a progress bar over the steps.

The size sliders start at the pipeline's native size (512 for Stable Diffusion 1.5), which
is also what keeps the tiny test pipeline's defaults to seconds on a CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr
import torch
from PIL import Image

from gradio_app.config import AppConfig
from gradio_app.feedback import is_blank, warn
from gradio_app.generation import BackgroundRun, checked_seed
from gradio_app.hf_models import device, load_diffusion, native_image_size
from gradio_app.loaders import MODELS
from gradio_app.tabs.common import ModelTab, examples, notice_area

TASK = "image_generation"
SIZE_STEP = 64  # a multiple of every Stable Diffusion latent downsampling factor
# A pipeline keeps scheduler state: a run waits here until a stopped run's last step ends,
# which Stop does not wait for (the queue slot frees at once).
DENOISING = threading.Lock()
MAX_SIZE = 1024
EXAMPLE_PROMPTS = ("A watercolor painting of a fox", "A lighthouse on a cliff at sunset")
EXAMPLE_STEPS = 15


def generate_image(
    model_ref: str,
    prompt: str,
    steps: int = 25,
    guidance: float = 7.5,
    width: int = 512,
    height: int = 512,
    seed: int = 0,
    negative_prompt: str = "",
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio injects its tracker here)
) -> Iterator[Image.Image | None]:
    """Yields after every denoising step (to move the progress bar and stay cancellable), then
    the image."""
    if is_blank(prompt):
        warn("Describe the image you want first.")
        yield None
        return
    width, height, steps = (_snap(width), _snap(height), int(steps))
    seed = checked_seed(seed)
    diffusion = MODELS.get(TASK, model_ref, load_diffusion)
    run = BackgroundRun("image-generate")

    def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:
        if run.step():
            pipe._interrupt = True  # diffusers' documented way to stop the denoising loop
        return tensors

    def generate() -> Image.Image:
        generator = torch.Generator(device=device()).manual_seed(seed)
        with DENOISING:
            return diffusion(
                prompt,
                negative_prompt=negative_prompt or None,
                num_inference_steps=steps,
                guidance_scale=float(guidance),
                width=width,
                height=height,
                generator=generator,
                callback_on_step_end=on_step_end,
            ).images[0]

    for update in run.updates(generate):
        if update.done:
            yield update.result
        elif update.steps == 0:
            yield None  # the previous image must not pass for this run's, if it is stopped
        else:
            progress((update.steps, steps), desc="Denoising", unit="steps")
            yield gr.skip()


def _snap(size: int) -> int:
    return max(SIZE_STEP, round(int(size) / SIZE_STEP) * SIZE_STEP)


def examples_for(native_size: int) -> tuple[dict[str, Any], ...]:
    """The examples, keyed by the handler's parameter names, which are also the API's
    (`client.predict(**row)`): half the pipeline's native size and 15 steps, so that a CPU
    paints one with Stable Diffusion 1.5 (256 pixels, a quarter of the default's pixels) and
    with the tiny test pipeline (64 pixels) without a long wait."""
    size = _snap(native_size // 2)
    return tuple(
        {"prompt": prompt, "steps": EXAMPLE_STEPS, "width": size, "height": size}
        for prompt in EXAMPLE_PROMPTS
    )


def build(config: AppConfig) -> None:
    # One request at a time on the queue; DENOISING also covers a stopped run's last step.
    tab = ModelTab.create(config, TASK, load_diffusion, concurrency_limit=1)
    size = _snap(native_image_size(tab.model_ref))
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", lines=3, value=EXAMPLE_PROMPTS[0])
            steps = gr.Slider(1, 100, value=25, step=1, label="Steps")
            guidance = gr.Slider(0.0, 20.0, value=7.5, step=0.5, label="Guidance scale")
            with gr.Row():
                largest = max(MAX_SIZE, size)
                width = gr.Slider(SIZE_STEP, largest, value=size, step=SIZE_STEP, label="Width")
                height = gr.Slider(SIZE_STEP, largest, value=size, step=SIZE_STEP, label="Height")
            seed = gr.Number(value=0, precision=0, label="Seed")
            negative_prompt = gr.Textbox(label="Negative prompt (optional)", value="")
            with gr.Row():
                paint = gr.Button("Generate", variant="primary")
                stop = gr.Button("Stop", variant="stop")
            examples(
                examples_for(size),
                {"prompt": prompt, "steps": steps, "width": width, "height": height},
            )
        with gr.Column():
            # A fixed height, or a small image (the tiny pipeline's 64 pixels) makes a strip.
            image = gr.Image(label="Image", type="pil", format="png", height=420)
            notice = notice_area()
    tab.run(
        paint.click,
        generate_image,
        inputs=[prompt, steps, guidance, width, height, seed, negative_prompt],
        outputs=[image],
        notice=notice,
        api_name="generate_image",
        stop=stop,
        stopped="Stopped before the image was finished.",
    )
