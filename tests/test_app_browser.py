"""A person's view of all nine tabs: Chromium (Debian's, driven by Playwright) on the app served
with the tiny Hugging Face models and the README's two trainings (`--checkpoints runs`).

Each tab runs its first example as a click fills it in, then fails once the way a person meets
a failure there: from the page where the page allows one (a question too long for the model, a
file that is not an image, a token outside the vocabulary, a blank story opening), otherwise a
model that cannot load or an unexpected exception inside the tab (patched in: the app runs in
this process). Each state is saved as a full-page screenshot, in
`$APP_SCREENSHOTS` when it is set, for a person to look at (`SCREENSHOTS` lists them).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gradio_app.app import TABS
from gradio_app.config import AppConfig
from gradio_app.hf_models import native_image_size
from gradio_app.tabs import (
    chatbot,
    image_classifier,
    image_generation,
    next_word,
    question_answering,
    sentiment,
    sequence_reversal,
    story,
    summarization,
)
from gradio_app.tabs.common import NOTICE_CLASS
from tests import app_fixtures, trained_runs

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
Browser = playwright_api.Browser
Page = playwright_api.Page
Locator = playwright_api.Locator

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the networking flags Chromium keeps calling Google services on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every screenshot, in reading order: the file of each is `{NN}_{name}.png`, NN its position.
SCREENSHOTS = (
    "summarization_example",
    "summarization_error",
    "next_word_example",
    "next_word_error",
    "story_example",
    "story_cjk",
    "story_error",
    "chatbot_example",
    "chatbot_error",
    "sentiment_example",
    "sentiment_error",
    "question_answering_example",
    "question_answering_error",
    "image_generation_example",
    "image_generation_stop",
    "image_generation_error",
    "image_classifier_example",
    "image_classifier_error",
    "sequence_reversal_example",
    "sequence_reversal_error",
)
FIRST_LOAD_MS = 60_000  # a tab's first request loads its model (JAX compiles the trained ones)
CJK_OPENING = "🐉 むかしむかし、ある村に" * 12  # longer than the tiny models' window
OFF_HOST = re.compile(r"^(?!http://127\.0\.0\.1[:/]|data:|blob:)")

tiny_models = app_fixtures.tiny_models  # the session fixtures, shared with the other app tests
readme_runs = trained_runs.readme_runs


@pytest.fixture(scope="module")
def app_url(tiny_models, readme_runs) -> Iterator[str]:
    """The app as the README serves it: every model, and `--checkpoints runs`."""
    with app_fixtures.running_app(AppConfig(models=tiny_models, checkpoints=readme_runs)) as url:
        yield url


@pytest.fixture(scope="module")
def unloadable(tmp_path_factory) -> dict[str, Path]:
    """Model directories that cannot load: one that does not exist, one with nothing in it."""
    root = tmp_path_factory.mktemp("models")
    (root / "gpt2-empty").mkdir()
    return {"summarization": root / "bart-copy", "next_word": root / "gpt2-empty"}


@pytest.fixture(scope="module")
def broken_app_url(tiny_models, unloadable) -> Iterator[str]:
    """The app with the summarization and next-word models unloadable, the others intact."""
    models = {**tiny_models, **{task: str(path) for task, path in unloadable.items()}}
    with app_fixtures.running_app(AppConfig(models=models)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        if os.environ.get("REQUIRE_BROWSER"):  # CI installs Chromium: a skip there hides a gap
            pytest.fail("REQUIRE_BROWSER is set but Chromium is missing; apt-get install chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory) -> Path:
    """`$APP_SCREENSHOTS` when set (kept for a person to look at), else a pytest temp folder."""
    wanted = os.environ.get("APP_SCREENSHOTS")
    if not wanted:
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(wanted)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def open_page(browser) -> Iterator[Callable[[str], Page]]:
    """Opens fresh pages; fails the test if any of them asked for anything off this host."""
    pages, requested = [], []

    def visit(url: str) -> Page:
        page = browser.new_page()
        page.set_default_timeout(30_000)
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url)
        pages.append(page)
        return page

    yield visit
    for page in pages:
        page.close()
    assert [url for url in requested if OFF_HOST.match(url)] == []


@pytest.fixture
def shoot(screenshot_dir) -> Callable[[Page, str], None]:
    def take(page: Page, name: str) -> None:
        for toast in page.get_by_test_id("toast-body").all():  # faded in, as a person reads it
            expect(toast).to_have_css("opacity", "1")
        number = SCREENSHOTS.index(name) + 1
        page.screenshot(path=screenshot_dir / f"{number:02d}_{name}.png", full_page=True)

    return take


def open_tab(page: Page, name: str) -> Locator:
    """The tab's panel, the outer one where a tab holds tabs of its own."""
    page.get_by_role("tab", name=name, exact=True).click()
    return page.get_by_role("tabpanel").first


def notice(tab: Locator) -> Locator:
    return tab.locator(f".prose.{NOTICE_CLASS}")


def expect_no_error_badge(page: Page) -> None:
    """Gradio paints a red "Error" over the outputs of a failed event; the tabs replace it."""
    expect(page.get_by_test_id("status-tracker").locator(".error")).to_have_count(0)
    assert "Traceback" not in page.content()


def expect_idle(tab: Locator) -> None:
    """Waits out the run: every progress display of the tab hidden, a streamed output whole."""
    expect(tab.locator("[data-testid='status-tracker']:not(.hide)")).to_have_count(0)


def expect_succeeded(page: Page, tab: Locator) -> None:
    expect_idle(tab)
    expect(notice(tab)).to_be_hidden()
    expect_no_error_badge(page)


def expect_failed(page: Page, tab: Locator, message: str | re.Pattern) -> None:
    expect(notice(tab)).to_have_text(message)
    expect_idle(tab)
    expect_no_error_badge(page)


def dismiss_toasts(page: Page) -> None:
    """Closes the warnings shown so far, so that the next screenshot shows only its own.

    Pressed in one script: a toast that is closing is inert until it is gone, which a click
    waits out.
    """
    page.get_by_test_id("toast-close").evaluate_all("buttons => buttons.forEach(b => b.click())")
    expect(page.get_by_test_id("toast-body")).to_have_count(0)


def labelled_box(tab: Locator, label: str) -> Locator:
    """A textbox found by its label, also where a copy button leaves it without an accessible
    name (Gradio puts the button inside the label)."""
    caption = tab.page.get_by_test_id("block-info").get_by_text(label, exact=True)
    return tab.locator("label").filter(has=caption).get_by_role("textbox")


def set_number(tab: Locator, label: str, value: int) -> None:
    """Types into a slider's number box, as a person does to get an exact value."""
    box = tab.get_by_role("spinbutton", name=f"number input for {label}", exact=True)
    box.fill(str(value))
    box.press("Enter")
    expect(box).to_have_value(str(value))


# One test a tab, in the app's order: its first example, then one failure, on one page.


def test_summarization_runs_its_example_and_says_when_its_model_is_missing(
    open_page, shoot, app_url, broken_app_url, unloadable
):
    page = open_page(app_url)
    tab = open_tab(page, "Summarization")
    text = tab.get_by_role("textbox", name="Text", exact=True)
    example = summarization.EXAMPLES[0]["text"]
    text.fill("")
    tab.get_by_role("button", name=example[:40]).click()
    expect(text).to_have_value(example)
    tab.get_by_role("button", name="Summarize", exact=True).click()
    expect(labelled_box(tab, "Summary")).not_to_have_value("", timeout=FIRST_LOAD_MS)
    expect_succeeded(page, tab)
    shoot(page, "summarization_example")

    page = open_page(broken_app_url)  # the same click where the model's directory is missing
    tab = open_tab(page, "Summarization")
    tab.get_by_role("button", name="Summarize", exact=True).click()
    missing = unloadable["summarization"]
    expect_failed(
        page,
        tab,
        f"The summarization model {missing} could not be loaded: the directory does not exist. "
        f"Check that {missing} holds a complete save_pretrained copy (configuration, weights "
        "and tokenizer), or point summarization at another directory in the file given to "
        "--models.",
    )
    expect(labelled_box(tab, "Summary")).to_have_value("")
    expect(tab.get_by_text(re.compile("— not available"))).to_be_visible()
    shoot(page, "summarization_error")
    tab = open_tab(page, "Sentiment")  # the other tabs keep working
    tab.get_by_role("button", name="Classify", exact=True).click()
    expect(tab.get_by_role("textbox", name="Sentiment")).not_to_have_value("")


def test_next_word_runs_its_example_appends_a_click_and_says_when_its_model_will_not_load(
    open_page, shoot, app_url, broken_app_url, unloadable
):
    page = open_page(app_url)
    tab = open_tab(page, "Next word")
    text = tab.get_by_role("textbox", name="Text", exact=True)
    example = next_word.EXAMPLES[0]["prompt"]
    text.fill("")
    tab.get_by_role("button", name=example, exact=True).click()
    expect(text).to_have_value(example)
    tab.get_by_role("button", name="Predict next word", exact=True).click()
    words = tab.get_by_test_id(re.compile("-confidence-set$"))
    expect(words.first).to_be_visible(timeout=FIRST_LOAD_MS)
    expect_succeeded(page, tab)
    shoot(page, "next_word_example")
    word = words.nth(1)
    clicked = word.get_attribute("data-testid").removesuffix("-confidence-set")
    word.click()
    expect(text).to_have_value(example + clicked)

    page = open_page(broken_app_url)  # its directory is there but holds no model
    tab = open_tab(page, "Next word")
    tab.get_by_role("button", name="Predict next word", exact=True).click()
    empty = unloadable["next_word"]
    expect_failed(
        page,
        tab,
        re.compile(
            f"The next word model {re.escape(str(empty))} could not be loaded: .+\\. "
            f"Check that {re.escape(str(empty))} holds a complete save_pretrained copy"
        ),
    )
    expect(tab.get_by_test_id(re.compile("-confidence-set$"))).to_have_count(0)
    shoot(page, "next_word_error")


def test_story_runs_its_example_and_a_long_cjk_opening_and_warns_on_a_blank_one(
    open_page, shoot, app_url
):
    page = open_page(app_url)
    tab = open_tab(page, "Story")
    opening = tab.get_by_role("textbox", name="Opening", exact=True)
    told = labelled_box(tab, "Story")
    example = story.EXAMPLES[0]["prompt"]
    opening.fill("")
    tab.get_by_role("button", name=example, exact=True).click()
    expect(opening).to_have_value(example)
    write = tab.get_by_role("button", name="Write story", exact=True)
    write.click()
    expect(told).to_have_value(re.compile(f"^{example}.", re.DOTALL), timeout=FIRST_LOAD_MS)
    expect_succeeded(page, tab)
    shoot(page, "story_example")
    dismiss_toasts(page)  # the tiny model's window is 64 tokens: every run here warns

    # Japanese and emoji span several byte-level tokens each; the opening overflows the window.
    opening.fill(CJK_OPENING)
    write.click()
    expect(told).to_have_value(re.compile(f"^{re.escape(CJK_OPENING)}.", re.DOTALL))
    expect(page.get_by_test_id("toast-body").filter(has_text="only the last")).to_be_visible()
    expect_succeeded(page, tab)
    shoot(page, "story_cjk")
    dismiss_toasts(page)

    # The story tab cannot fail from the page: a blank opening is the one thing it refuses.
    opening.fill("   ")
    write.click()
    expect(page.get_by_test_id("toast-body")).to_contain_text("Type the opening of a story first.")
    expect(told).to_have_value("")
    expect_succeeded(page, tab)
    shoot(page, "story_error")


def test_chatbot_runs_its_example_and_keeps_the_conversation_when_a_turn_fails(
    open_page, shoot, app_url, monkeypatch
):
    page = open_page(app_url)
    tab = open_tab(page, "Chatbot")
    message = labelled_box(tab, "Message")
    example = chatbot.EXAMPLES[0]["message"]
    tab.get_by_role("button", name=example, exact=True).click()
    expect(message).to_have_value(example)
    tab.get_by_role("button", name="Send", exact=True).click()
    expect(tab.get_by_test_id("user")).to_have_text(example)
    expect(tab.get_by_test_id("bot")).to_have_count(1, timeout=FIRST_LOAD_MS)
    expect(message).to_have_value("")  # emptied once the reply is written
    expect_succeeded(page, tab)
    shoot(page, "chatbot_example")

    def broken(*args, **kwargs):
        raise KeyError("a bug in the tab")

    monkeypatch.setattr(chatbot, "conversation_ids", broken)
    message.fill("And tomorrow?")
    tab.get_by_role("button", name="Send", exact=True).click()
    expect_failed(
        page, tab, "The chatbot tab hit an unexpected KeyError; the details are in the server log."
    )
    expect(tab.get_by_test_id("user")).to_have_text(example)  # the conversation stays
    expect(message).to_have_value("And tomorrow?")  # and the message, to send again
    expect(tab.get_by_test_id("bot")).to_have_count(1)
    shoot(page, "chatbot_error")
    tab.get_by_role("button", name="Clear conversation").click()
    expect(tab.get_by_test_id("user")).to_have_count(0)
    expect(notice(tab)).to_be_hidden()


def test_sentiment_runs_its_example_and_clears_its_outputs_when_the_tab_fails(
    open_page, shoot, app_url, monkeypatch
):
    page = open_page(app_url)
    tab = open_tab(page, "Sentiment")
    text = tab.get_by_role("textbox", name="Text", exact=True)
    verdict = tab.get_by_role("textbox", name="Sentiment", exact=True)
    confidence = tab.get_by_role("spinbutton", name="Confidence", exact=True)
    example = sentiment.EXAMPLES[0]["text"]
    text.fill("")
    tab.get_by_role("button", name=example, exact=True).click()
    expect(text).to_have_value(example)
    tab.get_by_role("button", name="Classify", exact=True).click()
    # The tiny model is unsure (about 50/50), so the default threshold makes it neutral.
    expect(verdict).to_have_value(sentiment.NEUTRAL, timeout=FIRST_LOAD_MS)
    expect(confidence).to_have_value(re.compile(r"^0\.\d+$"))
    expect(tab.get_by_test_id("positive-confidence-set")).to_be_visible()
    expect(tab.get_by_text(re.compile("— loaded$"))).to_be_visible()
    expect_succeeded(page, tab)
    shoot(page, "sentiment_example")

    def broken(tokenizer, model):
        raise KeyError("a bug in the tab")

    monkeypatch.setattr(sentiment, "context_window", broken)
    tab.get_by_role("button", name="Classify", exact=True).click()
    expect_failed(
        page,
        tab,
        "The sentiment tab hit an unexpected KeyError; the details are in the server log.",
    )
    expect(verdict).to_have_value("")
    expect(confidence).to_have_value("")
    expect(tab.get_by_test_id("positive-confidence-set")).to_have_count(0)
    shoot(page, "sentiment_error")


def test_question_answering_runs_its_example_and_refuses_a_question_too_long(
    open_page, shoot, app_url
):
    page = open_page(app_url)
    tab = open_tab(page, "Question answering")
    question = tab.get_by_role("textbox", name="Question", exact=True)
    context = tab.get_by_role("textbox", name="Context", exact=True)
    answer = tab.get_by_role("textbox", name="Answer", exact=True)
    score = tab.get_by_role("spinbutton", name="Score", exact=True)
    example = question_answering.EXAMPLES[0]
    question.fill("")
    context.fill("")
    tab.get_by_role("row", name=re.compile(re.escape(example["question"]))).click()
    expect(question).to_have_value(example["question"])
    expect(context).to_have_value(example["context"])
    ask = tab.get_by_role("button", name="Answer", exact=True)
    ask.click()
    # The tiny model is never confident enough for the default minimum: no answer, honestly.
    expect(answer).to_have_value(question_answering.NO_ANSWER, timeout=FIRST_LOAD_MS)
    expect(score).to_have_value(re.compile(r"^0\.\d+$"))
    expect(tab.get_by_test_id("highlighted-text")).to_contain_text(example["context"])
    expect_succeeded(page, tab)
    shoot(page, "question_answering_example")
    set_number(tab, "Minimum answer confidence", 0)
    ask.click()
    expect(answer).not_to_have_value(question_answering.NO_ANSWER)
    expect(tab.get_by_test_id("highlighted-text")).to_contain_text(answer.input_value())

    question.fill("where " * 40)
    ask.click()
    expect_failed(
        page,
        tab,
        "The question has 42 tokens; shorten it to at most 32 so the context fits in the "
        "model's window.",
    )
    expect(answer).to_have_value("")
    expect(score).to_have_value("")
    expect(tab.get_by_test_id("highlighted-text")).not_to_contain_text("Eiffel")
    shoot(page, "question_answering_error")


def test_image_generation_runs_its_example_stops_and_clears_the_image_when_it_fails(
    open_page, shoot, app_url, tiny_models, monkeypatch
):
    page = open_page(app_url)
    tab = open_tab(page, "Image generation")
    example = image_generation.examples_for(native_image_size(tiny_models["image_generation"]))[0]
    tab.get_by_role("row", name=re.compile(re.escape(example["prompt"]))).click()
    expect(tab.get_by_role("textbox", name="Prompt", exact=True)).to_have_value(example["prompt"])
    expect(tab.get_by_role("spinbutton", name="number input for Steps")).to_have_value(
        str(example["steps"])
    )
    generate = tab.get_by_role("button", name="Generate", exact=True)
    generate.click()
    image = tab.locator("img[src*='/gradio_api/file=']")
    expect(image).to_be_visible(timeout=FIRST_LOAD_MS)
    expect_succeeded(page, tab)
    shoot(page, "image_generation_example")

    # A long run: 100 steps at 256x256 take the tiny pipeline about a minute on a CPU.
    set_number(tab, "Steps", 100)
    set_number(tab, "Width", 256)
    set_number(tab, "Height", 256)
    generate.click()
    expect(tab.get_by_text(re.compile(r"\b[1-9]\d*/100 steps"))).to_be_visible()
    tab.get_by_role("button", name="Stop", exact=True).click()
    expect_failed(page, tab, "Stopped before the image was finished.")
    shoot(page, "image_generation_stop")

    def out_of_memory():
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(image_generation, "device", out_of_memory)
    set_number(tab, "Steps", 2)
    generate.click()
    expect_failed(
        page,
        tab,
        "The image generation tab hit an unexpected RuntimeError; the details are in the "
        "server log.",
    )
    expect(image).to_have_count(0)
    shoot(page, "image_generation_error")


def test_image_classifier_runs_its_example_and_refuses_a_file_that_is_not_an_image(
    open_page, shoot, app_url, tmp_path
):
    page = open_page(app_url)
    tab = open_tab(page, "Image classifier")
    _, caption = image_classifier.EXAMPLE_IMAGES[0]
    tab.get_by_role("button", name=caption, exact=True).click()
    remove = tab.get_by_role("button", name="Remove Image")
    expect(remove).to_be_visible()  # the example reached the input: classify only now
    classify = tab.get_by_role("button", name="Classify", exact=True)
    classify.click()
    prediction = tab.get_by_test_id("label-output-value")
    expect(prediction).to_have_text(re.compile(r"^\d$"), timeout=FIRST_LOAD_MS)
    seen = tab.locator("img[src*='/gradio_api/file=']")
    expect(seen).to_have_count(2)  # the upload and what the network sees
    expect_succeeded(page, tab)
    shoot(page, "image_classifier_example")

    # Named like a picture, so the browser sends it, but text inside, as a damaged file is.
    notes = tmp_path / "notes.png"
    notes.write_text("three, one, four")
    remove.click()
    tab.locator("input[type=file]").set_input_files(notes)
    expect(remove).to_be_visible()
    classify.click()
    expect_failed(page, tab, image_classifier.NOT_AN_IMAGE)
    expect(prediction).to_have_count(0)
    expect(seen).to_have_count(1)  # the broken upload's own preview
    shoot(page, "image_classifier_error")


def test_sequence_reversal_reverses_its_example_and_refuses_a_token_outside_the_vocabulary(
    open_page, shoot, app_url
):
    page = open_page(app_url)
    tab = open_tab(page, "Sequence reversal")
    integers = labelled_box(tab, "Integers")
    output = tab.get_by_role("textbox", name="Model output", exact=True)
    heatmap = tab.get_by_test_id("matplotlib").get_by_role("img")
    low, high = trained_runs.REVERSER_LENGTHS
    expect(
        tab.get_by_text(f"This model takes lists of {low}–{high} whole numbers from 0 to 9")
    ).to_be_visible()
    example = sequence_reversal.EXAMPLES[0]
    integers.fill("")
    tab.get_by_role("button", name=example, exact=True).click()
    expect(integers).to_have_value(example)
    tab.get_by_role("button", name="Reverse", exact=True).click()
    # A reverser trained for seconds is seldom exact: the page shows its tokens and a verdict.
    expect(output).to_have_value(re.compile(r"^\d( \d)*$"), timeout=FIRST_LOAD_MS)
    expect(tab.get_by_text(re.compile("^(✅ The exact reversal|❌ Differs from)"))).to_be_visible()
    expect(heatmap).to_be_visible()
    expect_succeeded(page, tab)
    shoot(page, "sequence_reversal_example")

    integers.fill("3 1 4 1 15")
    tab.get_by_role("button", name="Reverse", exact=True).click()
    expect_failed(page, tab, "Tokens must be integers from 0 to 9; got [15].")
    expect(output).to_have_value("")
    expect(tab.get_by_text(re.compile("^(✅|❌)"))).to_have_count(0)
    expect(heatmap).to_have_count(0)
    shoot(page, "sequence_reversal_error")


def test_every_tab_is_screenshotted_after_its_example_and_after_an_error():
    """A tab added to the app needs its two screenshots here."""
    tabs = [label.lower().replace(" ", "_") for label, _ in TABS]
    wanted = {f"{tab}_{kind}" for tab in tabs for kind in ("example", "error")}
    assert wanted <= set(SCREENSHOTS)
