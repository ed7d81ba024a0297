"""Command line: `python -m gradio_app [--models FILE] [--checkpoints DIR] [--host] [--port]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gradio_app.config import all_local, build_config
from jax_models.errors import UserError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gradio_app",
        description="Serve the model playground: one tab a task, each model loaded on first use.",
    )
    parser.add_argument(
        "--models",
        type=Path,
        metavar="FILE",
        help="TOML or JSON file mapping task names (summarization, next_word, story, chatbot, "
        "sentiment, question_answering, image_generation) to hub ids or local directories",
    )
    parser.add_argument(
        "--checkpoints",
        type=Path,
        metavar="DIR",
        help="a `scripts.train` workdir holding trained classifiers and the seq2seq model",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never contact the Hugging Face hub (implied when every model is a local directory)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="requests each tab runs at once"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        config = build_config(args.models, args.checkpoints, args.concurrency)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    # Both are read when Gradio and huggingface_hub are imported, so set them first.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    if args.offline or all_local(config):
        os.environ["HF_HUB_OFFLINE"] = "1"
    from gradio_app.app import build_app, launch

    launch(build_app(config), args.host, args.port)


if __name__ == "__main__":
    main()
