"""Command line: `python -m gradio_app [--models FILE] [--checkpoints DIR] [--host] [--port]`.

Everything a person can get wrong at start-up (the models file, the checkpoints folder, the
address) is checked before Gradio and the models are imported, and ends in one `error:` line
with exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from pathlib import Path
from typing import NoReturn

from gradio_app.config import AppConfig, all_local, build_config
from jax_models.errors import UserError


def _port(value: str) -> int:
    """argparse type: a TCP port a server can listen on."""
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port; give a number from 1 to 65535")
    return port


class _Parser(argparse.ArgumentParser):
    """argparse, except that a bad option is one `error:` line like every other start-up error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; python -m gradio_app --help lists the options.\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(
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
        help="a folder holding `scripts.train` workdirs (e.g. runs, for runs/lenet5_mnist and "
        "runs/seq2seq): every trained run below it is served in the two project tabs",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=_port, default=7860, help="port to serve on")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never contact the Hugging Face hub (implied when every model is a local directory)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="requests each tab runs at once"
    )
    return parser.parse_args(argv)


def check_address(host: str, port: int) -> None:
    """Binds `host:port` once, so that a port in use or a host that is not this machine's is
    one line before any tab is built (Gradio would say only that it found no empty port)."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as error:
        raise UserError(
            f"--host {host} is not an address or a host name this machine knows "
            f"({getattr(error, 'strerror', None) or error}); use 127.0.0.1 (this machine only) "
            "or 0.0.0.0 (every network interface)."
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as error:
            raise UserError(_bind_failure(host, port, error)) from None


def _bind_failure(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"Port {port} on {host} is in use (another copy of the app?); choose a free one "
            "with --port."
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"--host {host} is not an address of this machine; use 127.0.0.1 (this machine "
            "only) or 0.0.0.0 (every network interface)."
        )
    if error.errno == errno.EACCES:
        return f"Port {port} needs administrator rights here; choose one above 1023 with --port."
    return (
        f"Cannot serve on {host} port {port} ({error.strerror or error}); change --host or --port."
    )


def report_runs(config: AppConfig) -> None:
    """Says at start-up what `--checkpoints` holds, before the page is opened."""
    from gradio_app.runs import CLASSIFICATION, SEQ2SEQ, find_runs

    if config.checkpoints is None:
        return
    counts = {
        task: len(find_runs(config.checkpoints, task).runs) for task in (CLASSIFICATION, SEQ2SEQ)
    }
    print(
        f"Checkpoints: {counts[CLASSIFICATION]} trained classifier(s) and {counts[SEQ2SEQ]} "
        f"sequence reverser(s) below {config.checkpoints}.",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        config = build_config(args.models, args.checkpoints, args.concurrency)
        check_address(args.host, args.port)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    report_runs(config)
    # Both are read when Gradio and huggingface_hub are imported, so set them first.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    if args.offline or all_local(config):
        os.environ["HF_HUB_OFFLINE"] = "1"
    from gradio_app.app import build_app, launch

    try:
        launch(build_app(config), args.host, args.port)
    except OSError:  # Gradio's "Cannot find empty port": taken since `check_address`
        print(
            f"error: Port {args.port} on {args.host} was taken while the app started; choose a "
            "free one with --port.",
            file=sys.stderr,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
