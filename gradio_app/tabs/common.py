"""Pieces the tabs share: the model status line, the queue settings, the notice that says how a
run ended, and `ModelTab`, the setup all seven Hugging Face tabs have in common.

Every tab reports the same way. A failure shows one message in the tab's notice area, under
its outputs, and clears the outputs (a result left under an error message reads as the answer
to the new request); Stop says "Stopped." and keeps what was produced so far, marked
unfinished; a success removes the notice. `run_reported` wires this for any tab;
`ModelTab.run` adds what the Hugging Face tabs share.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr
from gradio.components import Component
from gradio.events import Dependency

from gradio_app.config import AppConfig
from gradio_app.feedback import take_outcome, user_facing
from gradio_app.loaders import MODELS

NOTICE_CLASS = "run-notice"
_EVENT_NUMBERS = itertools.count()  # names each reported event's outcome record
Listener = Callable[..., Dependency]  # `button.click`, `dependency.then`, ...


def status_line(describe: Callable[[], str]) -> gr.Markdown:
    """A line naming the tab's model and whether it loaded, or why not."""
    return gr.Markdown(describe(), elem_classes=["model-status"])


def refresh_after(event: Any, status: gr.Markdown, describe: Callable[[], str]) -> None:
    """Rewrites the status line once `event` finishes, whether it succeeded or failed.

    Two listeners because Gradio 6 skips `.then` after a failed event.
    """
    for outcome in (event.success, event.failure):
        outcome(describe, outputs=status, queue=False, api_visibility="private")


def queue_settings(config: AppConfig, tab: str) -> dict[str, Any]:
    """All events of one tab share one concurrency group, so a tab never runs more at once."""
    return {"concurrency_limit": config.concurrency_limit, "concurrency_id": tab}


def notice_area() -> gr.Markdown:
    """Where a tab says that its last run failed or was stopped; hidden until then."""
    return gr.Markdown(visible=False, elem_classes=[NOTICE_CLASS])


def report_outcome(
    event: Dependency,
    record: str,
    notice: gr.Markdown,
    outputs: Sequence[Component],
    *,
    keep: Sequence[Component] = (),
    stopped: str = "Stopped.",
) -> None:
    """Shows in `notice` how `event` ended; its handler must be `user_facing(tab, ...,
    notice=record)`, whose record of the run the failure listener reads.

    A failure shows its message and clears every output except those in `keep` (a chat
    history, which is also the next request's input). Gradio fires the same listener when Stop
    cancels the event: then the notice says `stopped` and the partial output stays. Either way
    the listener writes to every output, which replaces the red "Error" badge Gradio paints
    over the outputs of a failed event. A success hides the notice.
    """
    kept = {id(output) for output in keep}

    def on_failure(request: gr.Request) -> tuple[Any, ...]:
        outcome = take_outcome(record, request)
        if outcome is not None and outcome.state != "failed":  # running or closed: a Stop
            return (gr.Markdown(stopped, visible=True), *(gr.skip() for _ in outputs))
        message = outcome.message if outcome else "The request did not finish."
        cleared = (gr.skip() if id(output) in kept else None for output in outputs)
        return (gr.Markdown(message, visible=True), *cleared)

    event.success(
        lambda: gr.Markdown(visible=False),
        outputs=notice,
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
    event.failure(
        on_failure,
        outputs=[notice, *outputs],
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )


def examples(rows: Sequence[Mapping[str, Any]], inputs: Mapping[str, Component]) -> gr.Examples:
    """Clickable examples that fill `inputs` (the others keep their values).

    Each row maps the handler's parameter names, which are also the names an API client
    passes (`client.predict(**row, api_name=...)`), to a value.
    """
    names = list(inputs)
    return gr.Examples(
        [[row[name] for name in names] for row in rows], [inputs[name] for name in names]
    )


def run_reported(
    listener: Listener | Sequence[Listener],
    tab: str,
    handler: Callable[..., Any],
    *,
    inputs: Sequence[Component],
    outputs: Sequence[Component],
    notice: gr.Markdown,
    keep: Sequence[Component] = (),
    stop: gr.Button | None = None,
    stopped: str = "Stopped.",
    **settings: Any,
) -> Dependency:
    """Runs `handler` when `listener` fires (several listeners share one event), lets `stop`
    cancel it, and reports how it ended in `notice` (see `report_outcome`); `settings` go to
    the listener (api_name, concurrency, ...)."""
    record = f"{tab}#{next(_EVENT_NUMBERS)}"  # one outcome record per event, not per tab
    wrapped = user_facing(tab, handler, notice=record)
    arguments = {"inputs": list(inputs), "outputs": list(outputs), **settings}
    if isinstance(listener, Sequence):
        event = gr.on(list(listener), wrapped, **arguments)
    else:
        event = listener(wrapped, **arguments)
    if stop is not None:
        stop.click(None, cancels=[event])
    report_outcome(event, record, notice, outputs, keep=keep, stopped=stopped)
    return event


@dataclass(frozen=True)
class ModelTab:
    """What the Hugging Face tabs share: the model the configuration names for the task, the
    status line saying whether it loaded, and the tab's queue settings."""

    task: str
    model_ref: str
    describe: Callable[[], str]
    status: gr.Markdown
    queue: Mapping[str, Any]

    @classmethod
    def create(
        cls,
        config: AppConfig,
        task: str,
        load: Callable[[str], Any],
        *,
        concurrency_limit: int | None = None,
    ) -> ModelTab:
        """Puts the status line at the top of the tab; `concurrency_limit` overrides the
        configured one (a diffusion pipeline keeps state, so it runs one request at a time)."""
        model_ref = config.model(task)
        describe = partial(MODELS.describe, model_ref, load)
        queue = queue_settings(config, task)
        if concurrency_limit is not None:
            queue["concurrency_limit"] = concurrency_limit
        return cls(task, model_ref, describe, status_line(describe), queue)

    def run(
        self,
        listener: Listener | Sequence[Listener],
        handler: Callable[..., Any],
        *,
        inputs: Sequence[Component],
        outputs: Sequence[Component],
        notice: gr.Markdown,
        api_name: str | None = None,
        keep: Sequence[Component] = (),
        stop: gr.Button | None = None,
        stopped: str = "Stopped.",
    ) -> Dependency:
        """Runs `handler(model_ref, *inputs)` on the tab's queue (see `run_reported`) and
        refreshes the status line after each run (the first one loads the model)."""
        visibility = {"api_name": api_name} if api_name else {"api_visibility": "private"}
        event = run_reported(
            listener,
            self.task,
            partial(handler, self.model_ref),
            inputs=inputs,
            outputs=outputs,
            notice=notice,
            keep=keep,
            stop=stop,
            stopped=stopped,
            **visibility,
            **self.queue,
        )
        refresh_after(event, self.status, self.describe)
        return event
