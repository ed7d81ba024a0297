"""Every Hugging Face tab driven as Python functions on tiny local models, through the same
lazy loading code the app uses; and the pieces of the error pattern every tab shares."""

import contextlib
import threading
import time
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import torch
from gradio.context import LocalContext
from PIL import Image

from gradio_app import generation
from gradio_app.config import TASKS
from gradio_app.feedback import Outcome, take_outcome, user_facing
from gradio_app.hf_models import DEFAULT_IMAGE_SIZE, load_text_generator, native_image_size
from gradio_app.loaders import MODELS, ModelCache, ModelUnavailable
from gradio_app.tabs import (
    chatbot,
    image_generation,
    next_word,
    question_answering,
    sentiment,
    story,
    summarization,
)
from gradio_app.tabs.common import notice_area, run_reported
from gradio_app.tiny_models import WINDOW
from gradio_app.tiny_models import main as write_tiny_models_command
from jax_models.errors import UserError
from tests import app_fixtures

tiny_models = app_fixtures.tiny_models  # the session fixture, shared with the other app tests

LONG_TEXT = "The weather today is sunny and warm. " * 30  # far more than WINDOW tokens
# Byte-level tokens split these characters, so text decoded from the last WINDOW // 2 tokens
# starts mid-character and re-encodes to more tokens than were kept.
CJK_AND_EMOJI = "🐉 むかしむかし、ある村に" * 12


def last(updates):
    """The final value of a streaming handler (what the page shows when it finishes)."""
    values = [value for value in updates if not isinstance(value, type(gr.skip()))]
    return values[-1]


# Bad input: a warning, and no model is touched (a missing model would raise otherwise).

MISSING = "/nonexistent/model"
BLANK_CALLS = {
    "summarization": lambda text: last(summarization.summarize(MISSING, text)),
    "next_word": lambda text: next_word.next_words(MISSING, text),
    "story": lambda text: last(story.tell_story(MISSING, text)),
    "chatbot": lambda text: last(chatbot.chat(MISSING, text, [])),
    "sentiment": lambda text: sentiment.classify_sentiment(MISSING, text)[0],
    "question_answering": lambda text: question_answering.answer_question(MISSING, text, "c")[0],
    "image_generation": lambda text: last(image_generation.generate_image(MISSING, text)),
}


@pytest.mark.parametrize("task", sorted(BLANK_CALLS))
@pytest.mark.parametrize("text", ["", "  \n\t "])
def test_blank_input_warns_without_loading_a_model(task, text):
    with pytest.warns(UserWarning, match="first"):
        result = BLANK_CALLS[task](text)
    assert not result


# Loading: lazy, once, locked, and explained when it fails.


def test_concurrent_first_requests_load_once():
    cache, calls = ModelCache(), []

    def slow_load(model_ref):
        calls.append(model_ref)
        time.sleep(0.2)
        return object()

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("story", "m", slow_load)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["m"]
    assert len({id(result) for result in results}) == 1
    assert cache.describe("m", slow_load) == "Model: `m` — loaded"


def test_tabs_naming_the_same_model_share_one_load(tiny_models):
    generator = MODELS.get("story", tiny_models["story"], load_text_generator)
    assert MODELS.get("chatbot", tiny_models["chatbot"], load_text_generator) is generator


def test_missing_directory_says_which_model_why_and_how_to_fix(tmp_path):
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(ModelUnavailable) as raised:
        next_word.next_words(missing, "Hello")
    message = str(raised.value)
    assert f"next word model `{missing}`" in message
    assert "the directory does not exist" in message
    assert "--models" in message
    assert "Traceback" not in message
    assert "not available" in MODELS.describe(missing, load_text_generator)


def test_incomplete_directory_is_explained(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelUnavailable, match=f"sentiment model `{tmp_path}` could not be"):
        sentiment.classify_sentiment(str(tmp_path), "Hello")


def test_hub_id_offline_points_to_a_local_copy():
    with pytest.raises(ModelUnavailable) as raised:
        sentiment.classify_sentiment("no-such-org/no-such-model", "Hello")
    message = str(raised.value)
    assert "sentiment model `no-such-org/no-such-model` could not be loaded" in message
    assert "hf download no-such-org/no-such-model --local-dir models/no-such-model" in message
    assert "--models FILE --offline" in message


def test_failure_is_retried_so_a_model_copied_in_later_is_picked_up(tmp_path, tiny_models):
    target = tmp_path / "later"
    with pytest.raises(ModelUnavailable):
        MODELS.get("story", str(target), load_text_generator)
    target.symlink_to(tiny_models["story"])
    assert MODELS.get("story", str(target), load_text_generator) is not None
    assert MODELS.describe(str(target), load_text_generator).endswith("loaded")


def test_errors_reach_the_page_as_one_message_without_a_traceback(caplog):
    def bad_input():
        raise UserError("Type a number.")

    def crash():
        raise KeyError("internal detail")

    with pytest.raises(gr.Error, match="Type a number."):
        user_facing("story", bad_input)()
    with pytest.raises(gr.Error) as raised:
        user_facing("question_answering", crash)()
    assert str(raised.value.message) == (
        "The question answering tab hit an unexpected KeyError; the details are in the server log."
    )
    assert "internal detail" in caplog.text  # the traceback went to the server log


def _fails_with_code(text):
    raise UserError("Point `summarization` at a directory.")


def test_a_toast_shows_plain_text_without_markdown_marks():
    with pytest.raises(gr.Error) as raised:
        user_facing("summarization", _fails_with_code)("x")
    assert raised.value.visible
    assert raised.value.message == "Point summarization at a directory."


@contextlib.contextmanager
def browser_session(session_hash):
    """What Gradio sets while it serves a request from one browser session."""
    request = SimpleNamespace(session_hash=session_hash)
    token = LocalContext.request.set(request)
    try:
        yield request
    finally:
        LocalContext.request.reset(token)


def test_a_tab_with_a_notice_hides_the_toast_and_its_session_reads_the_outcome_once():
    handler = user_facing("summarization", _fails_with_code, notice="summarization")
    with browser_session("first") as first, pytest.raises(gr.Error) as raised:
        handler("x")
    assert not raised.value.visible  # no toast over the tab bar ...
    assert raised.value.message == "Point summarization at a directory."  # API: plain text
    assert take_outcome("summarization", SimpleNamespace(session_hash="second")) is None
    outcome = take_outcome("summarization", first)
    assert outcome == Outcome("failed", "Point `summarization` at a directory.")
    assert take_outcome("summarization", first) is None


def test_two_events_of_one_tab_keep_their_own_outcomes():
    """Upload fails, and the drawing event starts before the page reads why: the upload's
    notice must still get its own message."""
    upload = user_facing("image_classifier", _fails_with_code, notice="image_classifier#0")
    drawing = user_facing("image_classifier", lambda text: text, notice="image_classifier#1")
    with browser_session("s") as session:
        with pytest.raises(gr.Error):
            upload("x")
        assert drawing("y") == "y"
        outcome = take_outcome("image_classifier#0", session)
    assert outcome == Outcome("failed", "Point `summarization` at a directory.")


def _counting(n):
    yield from range(n)


def test_a_streaming_run_is_recorded_as_running_then_finished_or_stopped():
    handler = user_facing("story", _counting, notice="story")
    with browser_session("s") as session:
        assert list(handler(3)) == [0, 1, 2]
        assert take_outcome("story", session) is None  # finished: nothing to report
        updates = handler(100)
        next(updates)
        assert take_outcome("story", session) == Outcome("running")
        updates.close()  # what Gradio does to the handler on Stop
        assert take_outcome("story", session) == Outcome("stopped")


def test_failure_listener_reports_a_failure_a_stop_and_a_refused_request():
    def stream_or_fail(text):
        if text == "fail":
            raise UserError("Point `story` at a directory.")
        yield "partial"

    with gr.Blocks() as demo:
        button, text, result, history = gr.Button(), gr.Textbox(), gr.Textbox(), gr.Chatbot()
        notice = notice_area()
        event = run_reported(
            button.click,
            "story",
            stream_or_fail,
            inputs=[text],
            outputs=[result, history],
            notice=notice,
            keep=[history],
            stopped="Stopped. The story above is unfinished.",
        )
    handler = demo.fns[event["id"]].fn
    listeners = [fn for fn in demo.fns.values() if fn.trigger_after == event["id"]]
    on_failure = next(fn for fn in listeners if fn.trigger_only_on_failure)
    on_success = next(fn for fn in listeners if fn.trigger_only_on_success)
    assert [block._id for block in on_failure.outputs] == [notice._id, result._id, history._id]
    with browser_session("s") as session:
        with pytest.raises(gr.Error):
            list(handler("fail"))
        shown, cleared, kept = on_failure.fn(session)
        assert (shown.value, shown.visible) == ("Point `story` at a directory.", True)
        assert cleared is None and kept == gr.skip()

        stopped = handler("go")
        next(stopped)
        stopped.close()
        shown, *outputs = on_failure.fn(session)
        assert shown.value == "Stopped. The story above is unfinished."
        assert outputs == [gr.skip(), gr.skip()]  # the partial story stays

        shown, cleared, kept = on_failure.fn(session)  # no run recorded: Gradio refused it
        assert shown.value == "The request did not finish." and cleared is None
    assert on_success.fn().visible is False


# Summarization.


def test_summary_length_follows_the_controls(tiny_models):
    text = "The weather today is sunny and warm, a perfect day for a walk in the park."
    lengths = [
        len(last(summarization.summarize(tiny_models["summarization"], text, n, n)))
        for n in (4, 12, 24)
    ]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]


def test_summary_of_a_long_text_is_truncated_and_says_so(tiny_models):
    with pytest.warns(UserWarning, match=f"reads at most {WINDOW}, so only the first"):
        summary = last(summarization.summarize(tiny_models["summarization"], LONG_TEXT, 4, 8))
    assert summary


# Next word.


def test_next_words_are_the_models_top_k(tiny_models):
    words = next_word.next_words(tiny_models["next_word"], "The weather today", top_k=5)
    generator = MODELS.get("next_word", tiny_models["next_word"], load_text_generator)
    ids = generator.tokenizer("The weather today", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = generator.model(ids).logits[0, -1]
        logits[generator.tokenizer.all_special_ids] = float("-inf")
        probabilities = logits.softmax(-1)
    best = generator.tokenizer.decode([int(probabilities.argmax())])
    assert 1 <= len(words) <= 5
    assert max(words, key=words.get) == best
    assert words[best] == pytest.approx(float(probabilities.max()))


def test_next_words_never_offer_end_of_text(tiny_models):
    """Even when every token is asked for: a special token is not a word to append."""
    tokenizer = MODELS.get("next_word", tiny_models["next_word"], load_text_generator).tokenizer
    words = next_word.next_words(tiny_models["next_word"], "The weather today", len(tokenizer))
    assert words and not set(tokenizer.all_special_tokens) & set(words)
    assert sum(words.values()) == pytest.approx(1.0)


def test_clicking_a_word_appends_it_verbatim():
    clicked = gr.SelectData(None, {"index": 0, "value": " today"})
    assert next_word.append_word("The weather", clicked) == "The weather today"
    newline = gr.SelectData(None, {"index": 0, "value": "↵"})
    assert next_word.append_word("Line", newline) == "Line\n"


def test_long_prompt_keeps_its_end_and_says_so(tiny_models):
    with pytest.warns(UserWarning, match="so only the last"):
        assert next_word.next_words(tiny_models["next_word"], LONG_TEXT, top_k=3)


# Story.


def test_story_streams_continues_the_prompt_and_is_reproducible(tiny_models):
    def write(seed):
        return list(story.tell_story(tiny_models["story"], "Once upon a time", 12, 1.0, 0.9, seed))

    updates = write(seed=0)
    assert len(set(updates)) > 2  # streamed, not one final answer
    assert all(update.startswith("Once upon a time") for update in updates)
    assert len(updates[-1]) > len("Once upon a time")
    assert write(seed=0)[-1] == updates[-1]
    assert write(seed=2)[-1] != updates[-1]


def test_long_cjk_and_emoji_opening_keeps_its_last_tokens_without_re_encoding(tiny_models):
    tokenizer = MODELS.get("story", tiny_models["story"], load_text_generator).tokenizer
    budget = WINDOW // 2  # the window less as many new tokens
    kept = tokenizer(CJK_AND_EMOJI)["input_ids"][-budget:]
    assert len(tokenizer(tokenizer.decode(kept))["input_ids"]) > budget  # the old flaw's trigger
    with pytest.warns(UserWarning, match=f"so only the last {budget} were used"):
        told = last(story.tell_story(tiny_models["story"], CJK_AND_EMOJI, budget, 1.0, 0.9, 0))
    assert told.startswith(CJK_AND_EMOJI) and len(told) > len(CJK_AND_EMOJI)


def test_story_length_is_capped_by_the_window(tiny_models):
    with pytest.warns(UserWarning, match=f"at most {WINDOW // 2} new ones"):
        last(story.tell_story(tiny_models["story"], "Once", max_new_tokens=500))


# Chatbot.


def test_chat_keeps_history_and_streams_the_reply(tiny_models):
    first = list(chatbot.chat(tiny_models["chatbot"], "Hello", []))
    assert first[0][-2:] == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": ""},
    ]
    history = first[-1]
    second = last(chatbot.chat(tiny_models["chatbot"], "How are you?", history))
    assert [message["role"] for message in second] == ["user", "assistant"] * 2
    assert second[:2] == history


def test_conversation_is_trimmed_to_the_window_oldest_turns_first(tiny_models, capsys):
    tokenizer = MODELS.get("chatbot", tiny_models["chatbot"], load_text_generator).tokenizer
    turns = ["Hello, how are you doing today?", "I am fine, thank you.", "Hello"]
    ids = chatbot.conversation_ids(tokenizer, turns, budget=12)
    eos = tokenizer.eos_token_id
    assert len(ids) <= 12
    assert ids[-1] == eos
    assert tokenizer.decode([i for i in ids if i != eos]).endswith("Hello")
    assert "oldest messages no longer fit" in capsys.readouterr().out
    everything = chatbot.conversation_ids(tokenizer, turns, budget=WINDOW)
    assert everything.count(eos) == 3  # one separator after every turn


def test_chat_reads_gradio_message_parts():
    parts = {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "file"}]}
    assert chatbot.message_text(parts) == "Hi"
    assert chatbot.message_text({"role": "user", "content": "Hi"}) == "Hi"


# Sentiment.


def test_sentiment_is_neutral_below_the_threshold(tiny_models):
    confident_label, confidence, scores = sentiment.classify_sentiment(
        tiny_models["sentiment"], "I loved it", threshold=0.0
    )
    assert set(scores) == {"positive", "negative"}
    assert confident_label == max(scores, key=scores.get)
    assert confidence == max(scores.values())
    assert sum(scores.values()) == pytest.approx(1.0)
    verdict, _, _ = sentiment.classify_sentiment(
        tiny_models["sentiment"], "I loved it", threshold=0.99
    )
    assert verdict == sentiment.NEUTRAL


def test_sentiment_of_a_long_text_is_truncated_and_says_so(tiny_models):
    with pytest.warns(UserWarning, match=f"reads at most {WINDOW}"):
        sentiment.classify_sentiment(tiny_models["sentiment"], LONG_TEXT)


# Question answering.

CONTEXT = "The Eiffel Tower is in Paris and was completed in 1889."


def test_answer_is_a_span_of_the_context_and_is_highlighted(tiny_models):
    answer, score, highlights = question_answering.answer_question(
        tiny_models["question_answering"], "Where is the tower?", CONTEXT, min_score=0.0
    )
    assert answer and answer in CONTEXT
    assert 0.0 < score <= 1.0
    assert "".join(text for text, _ in highlights) == CONTEXT
    assert [text for text, label in highlights if label == "answer"] == [answer]


def test_unanswerable_question_says_so_instead_of_a_random_span(tiny_models):
    answer, _, highlights = question_answering.answer_question(
        tiny_models["question_answering"], "Who won the cup?", CONTEXT
    )
    assert answer == question_answering.NO_ANSWER
    assert highlights == [(CONTEXT, None)]


def test_long_context_is_truncated_and_says_so(tiny_models):
    with pytest.warns(UserWarning, match="question and context has"):
        question_answering.answer_question(
            tiny_models["question_answering"], "Where?", LONG_TEXT, min_score=0.0
        )


def test_best_span_respects_order_and_maximum_length():
    logits = torch.zeros(40)
    logits[30], logits[5] = 10.0, 10.0  # best start after best end: not a valid span
    in_context = torch.ones(40, dtype=torch.bool)
    in_context[0] = False
    start, end, _, _ = question_answering._best_span(logits.clone(), logits.clone(), in_context)
    assert start <= end <= start + question_answering.MAX_ANSWER_TOKENS - 1


# Image generation.


def test_image_size_defaults_to_the_pipelines_native_size(tiny_models, tmp_path):
    assert native_image_size(tiny_models["image_generation"]) == 64  # 32 latents, VAE x2
    assert native_image_size(str(tmp_path)) == DEFAULT_IMAGE_SIZE  # no configuration files
    assert native_image_size("no-org/never-downloaded") == DEFAULT_IMAGE_SIZE


def test_image_has_the_requested_size_and_follows_the_seed(tiny_models):
    def paint(seed, width=64):
        updates = list(
            image_generation.generate_image(
                tiny_models["image_generation"], "a photo", 2, 7.5, width, 64, seed
            )
        )
        assert len(updates) == 4  # one before the first step, one per step, then the image
        return updates[-1]

    image = paint(seed=0)
    assert isinstance(image, Image.Image) and image.size == (64, 64)
    first = next(
        image_generation.generate_image(tiny_models["image_generation"], "a photo", 2, 7.5, 64, 64)
    )
    assert first is None  # clears the last image, which a stopped run must not pass for
    assert paint(seed=0, width=128).size == (128, 64)
    assert np.array_equal(np.asarray(paint(seed=0)), np.asarray(image))
    assert not np.array_equal(np.asarray(paint(seed=1)), np.asarray(image))


def test_closing_the_handler_stops_the_denoising_loop(tiny_models, monkeypatch):
    steps_run = []
    original_step = generation.BackgroundRun.step
    monkeypatch.setattr(
        generation.BackgroundRun, "step", lambda run: steps_run.append(1) or original_step(run)
    )
    handler = image_generation.generate_image(
        tiny_models["image_generation"], "a photo", 200, 7.5, 64, 64, 0
    )
    next(handler), next(handler)
    handler.close()  # what Gradio does when the user presses Stop
    workers = [t for t in threading.enumerate() if t.name == "image-generate"]
    for worker in workers:
        worker.join(timeout=30)
    assert workers and not any(worker.is_alive() for worker in workers)
    assert len(steps_run) < 200


def test_a_run_stopped_before_its_first_update_is_taken_never_starts():
    calls = []
    run = generation.BackgroundRun("unit-never-started")
    updates = run.updates(lambda: calls.append(1))
    assert next(updates) == generation.Update(0, "")
    updates.close()
    time.sleep(0.1)  # time enough for a worker, had one started, to run
    assert not calls
    assert not [t for t in threading.enumerate() if t.name == "unit-never-started"]


def test_a_cancelled_run_stops_text_generation_at_the_next_step():
    run = generation.BackgroundRun("unit")
    updates = run.updates(lambda: [run.step() for _ in range(3)])
    assert next(updates).steps == 0
    assert next(updates).steps == 1
    updates.close()
    stop = run.stopping_criteria(torch.zeros((2, 3), dtype=torch.long), None)
    assert stop.tolist() == [True, True]


# The tiny models module, which the README's no-download demo runs.


def test_tiny_models_file_names_every_task(tiny_models):
    assert set(tiny_models) == set(TASKS)


def test_tiny_models_command_explains_a_directory_it_cannot_write(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exited:
        write_tiny_models_command([str(blocker / "tiny")])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: cannot write the tiny models under") and error.count("\n") == 1


@pytest.mark.parametrize("seed", [None, -1, 2.5, 2**32, 10**20, float("inf")])
def test_a_seed_torch_cannot_take_is_one_plain_error(tiny_models, seed):
    with pytest.raises(UserError, match=r"seed must be a whole number from 0 to 4294967295"):
        list(story.tell_story(tiny_models["story"], "Once upon a time", 4, 1.0, 0.9, seed))
    with pytest.raises(UserError, match=r"seed must be a whole number from 0 to 4294967295"):
        list(
            image_generation.generate_image(
                tiny_models["image_generation"], "a", 1, 7.5, 64, 64, seed
            )
        )
