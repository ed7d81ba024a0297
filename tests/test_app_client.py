"""Every tab driven through `gradio_client` against the app served on 127.0.0.1, on tiny local
models: the API names, results, failures that stay in their tab, cancellation, queueing."""

import ipaddress
import socket
import threading
import time

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from gradio_app import generation
from gradio_app.app import build_app
from gradio_app.config import AppConfig
from gradio_app.hf_models import native_image_size
from gradio_app.tabs import (
    chatbot,
    image_generation,
    next_word,
    question_answering,
    sentiment,
    story,
    summarization,
)
from gradio_app.tabs.question_answering import NO_ANSWER
from tests import app_fixtures

tiny_models = app_fixtures.tiny_models  # the session fixture, shared with the other app tests
API_NAMES = {
    "/summarize",
    "/next_word",
    "/story",
    "/chat",
    "/sentiment",
    "/answer",
    "/generate_image",
    "/classify_image",
    "/reverse_sequence",
}


class OutboundRecorder:
    """Records every non-loopback address the process resolves or connects to."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.outbound: list[str] = []
        connect, resolve = socket.socket.connect, socket.getaddrinfo

        def recording_connect(sock, address):
            self._check(address[0] if isinstance(address, tuple) else None)
            return connect(sock, address)

        def recording_resolve(host, *args, **kwargs):
            self._check(host)
            return resolve(host, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", recording_connect)
        monkeypatch.setattr(socket, "getaddrinfo", recording_resolve)

    def _check(self, host) -> None:
        if host is None or host in ("localhost", "", None):
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
        self.outbound.append(str(host))


@pytest.fixture(scope="module")
def served(tiny_models):
    """The app on tiny models; records the traffic of building and launching it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        recorder = OutboundRecorder(monkeypatch)
        context = app_fixtures.running_app(AppConfig(models=tiny_models))
        url = context.__enter__()
        startup_traffic = list(recorder.outbound)
    try:
        yield Client(url, verbose=False), startup_traffic
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="module")
def client(served) -> Client:
    return served[0]


def test_start_up_talks_to_nothing_but_the_loopback(served):
    assert served[1] == []


def test_every_tab_has_its_api_name(client):
    assert (
        set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) >= API_NAMES
    )


def test_summarize(client):
    summary = client.predict("The weather today is sunny and warm.", 5, 12, api_name="/summarize")
    assert isinstance(summary, str) and summary


def test_next_word(client):
    words = client.predict("The weather today", 4, api_name="/next_word")
    assert 1 <= len(words["confidences"]) <= 4
    assert words["label"] == words["confidences"][0]["label"]


def test_story_follows_the_seed(client):
    first = client.predict("Once upon a time", 12, 1.0, 0.9, 0, api_name="/story")
    assert first.startswith("Once upon a time") and len(first) > len("Once upon a time")
    assert client.predict("Once upon a time", 12, 1.0, 0.9, 0, api_name="/story") == first


def test_chat_carries_the_history(client):
    history = client.predict("Hello", [], api_name="/chat")
    assert [message["role"] for message in history] == ["user", "assistant"]
    history = client.predict("How are you?", history, api_name="/chat")
    assert [message["role"] for message in history] == ["user", "assistant"] * 2
    assert history[2]["content"][0]["text"] == "How are you?"


def test_sentiment(client):
    verdict, confidence, scores = client.predict("I loved it", 0.0, api_name="/sentiment")
    assert verdict in {"positive", "negative"} and verdict == scores["label"]
    neutral, _, _ = client.predict("I loved it", 0.99, api_name="/sentiment")
    assert neutral == "neutral"


def test_answer_and_no_answer(client):
    context = "The Eiffel Tower is in Paris."
    answer, score, highlighted = client.predict("Where?", context, 0.0, api_name="/answer")
    assert answer in context and 0 < score <= 1
    assert [span["token"] for span in highlighted if span["class_or_confidence"]] == [answer]
    no_answer, _, _ = client.predict("Who won?", context, api_name="/answer")
    assert no_answer == NO_ANSWER


def test_generate_image(client):
    path = client.predict("a photo", 2, 7.5, 128, 64, 0, "", api_name="/generate_image")
    assert Image.open(path).size == (128, 64)


# Each Hugging Face tab's first example, exactly as a click on it would send it.

EXAMPLE_TABS = {
    "/summarize": summarization,
    "/next_word": next_word,
    "/story": story,
    "/chat": chatbot,
    "/sentiment": sentiment,
    "/answer": question_answering,
    "/generate_image": image_generation,
}


def tab_examples(api_name, tiny_models):
    if api_name == "/generate_image":  # sized for the pipeline
        return image_generation.examples_for(native_image_size(tiny_models["image_generation"]))
    return EXAMPLE_TABS[api_name].EXAMPLES


@pytest.mark.parametrize("api_name", sorted(EXAMPLE_TABS))
def test_first_example_runs_as_it_is(client, tiny_models, api_name):
    example = tab_examples(api_name, tiny_models)[0]
    result = client.predict(**example, api_name=api_name)
    if api_name == "/generate_image":
        assert Image.open(result).size == (example["width"], example["height"])
    elif api_name == "/chat":
        assert [message["role"] for message in result] == ["user", "assistant"]
    elif api_name in ("/sentiment", "/answer"):
        assert result[0] and result[1] is not None
    else:
        assert result


def test_every_example_is_on_the_page(tiny_models):
    samples = [
        sample
        for component in build_app(AppConfig(models=tiny_models)).config["components"]
        if component["type"] == "dataset"
        for sample in component["props"]["samples"]
    ]
    for api_name in EXAMPLE_TABS:
        for example in tab_examples(api_name, tiny_models):
            assert list(example.values()) in samples


def test_image_defaults_follow_the_pipelines_native_size(client):
    path = client.predict("a photo", api_name="/generate_image")
    assert Image.open(path).size == (64, 64)  # the tiny pipeline's, not Stable Diffusion's 512


def test_long_cjk_and_emoji_story_opening_is_cut_as_tokens(client):
    opening = "🐉 むかしむかし、ある村に" * 12  # re-encoding decoded tokens overflowed the window
    told = client.predict(opening, 120, 1.0, 0.9, 0, api_name="/story")
    assert told.startswith(opening) and len(told) > len(opening)


# Failures: the message an API client gets is the one the page shows in the tab's notice.


def test_unexpected_failure_is_one_sentence_pointing_to_the_log(client, monkeypatch):
    def broken_window(tokenizer, model):
        raise KeyError("internal detail")

    monkeypatch.setattr(sentiment, "context_window", broken_window)
    with pytest.raises(AppError) as raised:
        client.predict("I loved it", 0.5, api_name="/sentiment")
    assert str(raised.value) == (
        "The sentiment tab hit an unexpected KeyError; the details are in the server log."
    )


def test_a_question_too_long_for_the_window_says_how_long_it_may_be(client):
    with pytest.raises(AppError) as raised:
        client.predict("where " * 40, "Paris.", api_name="/answer")
    assert str(raised.value) == (
        "The question has 42 tokens; shorten it to at most 32 so the context fits in the "
        "model's window."
    )


def test_blank_input_returns_nothing_and_does_not_fail(client):
    assert client.predict("   ", api_name="/summarize") == ""
    assert client.predict("", [], api_name="/chat") == []


def test_trained_model_tabs_explain_how_to_train_without_checkpoints(client, tmp_path):
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    with pytest.raises(AppError, match="python -m scripts.train --config=configs/default.py"):
        client.predict(handle_file(str(image)), None, api_name="/classify_image")
    with pytest.raises(AppError, match="python -m scripts.train --config=configs/seq2seq.py"):
        client.predict("1 2 3", api_name="/reverse_sequence")


def test_stop_cancels_image_generation_on_the_server(client, monkeypatch):
    steps = []  # the app runs in this process, so its denoising steps can be counted here
    step = generation.BackgroundRun.step

    def slow_counted_step(run):
        steps.append(1)
        # 100 steps take at least 20 s, far longer than cancelling; and a Stop sent while the
        # first step sleeps arrives before Gradio holds the generator, the case that once
        # let the whole run go on (see gradio_app.generation)
        time.sleep(0.2)
        return step(run)

    monkeypatch.setattr(generation.BackgroundRun, "step", slow_counted_step)
    job = client.submit("a photo", 100, 7.5, 64, 64, 0, "", api_name="/generate_image")
    deadline = time.monotonic() + 60
    while not steps and time.monotonic() < deadline:
        time.sleep(0.05)
    job.cancel()
    for worker in _workers("image-generate"):
        worker.join(timeout=30)
    assert not _workers("image-generate")
    assert 0 < len(steps) < 100


def _workers(name):
    return [thread for thread in threading.enumerate() if thread.name == name and thread.is_alive()]


def test_each_tab_queues_in_its_own_concurrency_group(tiny_models):
    demo = build_app(AppConfig(models=tiny_models, concurrency_limit=2))
    groups = {fn.api_name: (fn.concurrency_id, fn.concurrency_limit) for fn in demo.fns.values()}
    assert groups["summarize"] == ("summarization", 2)
    assert groups["chat"] == ("chatbot", 2)
    assert groups["generate_image"] == ("image_generation", 1)  # a pipeline runs one at a time


# A model that cannot load breaks only its own tab.


@pytest.fixture(scope="module")
def broken_client(tiny_models, tmp_path_factory):
    missing = str(tmp_path_factory.mktemp("empty") / "bart-copy")
    models = {**tiny_models, "summarization": missing, "question_answering": "no-org/no-model"}
    with app_fixtures.running_app(AppConfig(models=models)) as url:
        yield Client(url, verbose=False), missing


def test_unloadable_model_is_explained_in_its_tab_and_others_keep_working(broken_client):
    client, missing = broken_client
    with pytest.raises(AppError) as raised:
        client.predict("Some text.", api_name="/summarize")
    message = str(raised.value)
    assert f"summarization model {missing} could not be loaded" in message  # plain text
    assert "--models" in message and "Traceback" not in message
    with pytest.raises(AppError, match="hf download no-org/no-model"):
        client.predict("Where?", "Paris.", api_name="/answer")
    verdict, _, _ = client.predict("I loved it", 0.0, api_name="/sentiment")
    assert verdict in {"positive", "negative"}
