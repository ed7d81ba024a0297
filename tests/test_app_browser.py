"""A person's view: Chromium (Debian's, driven by Playwright) uses four tabs of the app served
on tiny local models, and one tab whose model is missing."""

import os
import re
import shutil

import pytest

from gradio_app.config import AppConfig
from gradio_app.tabs.question_answering import NO_ANSWER
from tests import app_fixtures

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

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
tiny_models = app_fixtures.tiny_models  # the session fixture, shared with the other app tests


@pytest.fixture(scope="module")
def app_url(tiny_models, tmp_path_factory):
    """The app with every tiny model except summarization, whose directory is missing."""
    missing = str(tmp_path_factory.mktemp("models") / "bart-copy")
    with app_fixtures.running_app(
        AppConfig(models={**tiny_models, "summarization": missing})
    ) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
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


@pytest.fixture
def page(browser, app_url):
    """A fresh page on the app; fails the test if the page asked for anything off this host."""
    page = browser.new_page()
    page.set_default_timeout(30_000)
    outside = []
    page.on("request", lambda request: outside.append(request.url))
    page.goto(app_url)
    yield page
    page.close()
    local = ("http://127.0.0.1", "data:", "blob:")
    assert [url for url in outside if not url.startswith(local)] == []


def open_tab(page, name):
    page.get_by_role("tab", name=name, exact=True).click()
    return page.get_by_role("tabpanel")


def test_sentiment_shows_the_verdict_and_confidence(page):
    tab = open_tab(page, "Sentiment")
    tab.get_by_role("textbox", name="Text", exact=True).fill("I really loved this movie")
    tab.get_by_role("button", name="Classify", exact=True).click()
    # The tiny model is unsure (about 50/50), so the default threshold makes it neutral.
    expect(tab.get_by_role("textbox", name="Sentiment")).to_have_value("neutral")
    expect(tab.get_by_role("spinbutton", name="Confidence", exact=True)).to_have_value(
        re.compile(r"0\.\d+")
    )
    expect(tab.get_by_test_id("positive-confidence-set")).to_be_visible()
    expect(tab.get_by_text(re.compile("— loaded$"))).to_be_visible()


def test_clicking_a_next_word_appends_it(page):
    tab = open_tab(page, "Next word")
    text = tab.get_by_role("textbox", name="Text", exact=True)
    text.fill("The weather today")
    tab.get_by_role("button", name="Predict next word").click()
    word = tab.get_by_test_id(re.compile("-confidence-set$")).nth(1)
    clicked = word.get_attribute("data-testid").removesuffix("-confidence-set")
    word.click()
    expect(text).to_have_value("The weather today" + clicked)


def test_chat_shows_both_turns_and_clears_the_message_box(page):
    tab = open_tab(page, "Chatbot")
    message = tab.get_by_placeholder("Say something…")
    message.fill("Hello there")
    message.press("Enter")
    expect(message).to_have_value("")
    expect(tab.get_by_test_id("user")).to_have_text("Hello there")
    expect(tab.get_by_test_id("bot")).to_have_count(1)
    tab.get_by_role("button", name="Clear conversation").click()
    expect(tab.get_by_test_id("user")).to_have_count(0)


def test_question_answering_highlights_the_span_or_says_there_is_none(page):
    tab = open_tab(page, "Question answering")
    tab.get_by_role("button", name="Answer", exact=True).click()
    expect(tab.get_by_role("textbox", name="Answer")).to_have_value(NO_ANSWER)
    threshold = tab.get_by_role("spinbutton", name=re.compile("Minimum answer confidence"))
    threshold.fill("0")
    threshold.press("Enter")
    tab.get_by_role("button", name="Answer", exact=True).click()
    answer = tab.get_by_role("textbox", name="Answer")
    expect(answer).not_to_have_value(NO_ANSWER)
    expect(answer).not_to_have_value("")
    expect(tab.get_by_test_id("highlighted-text")).to_contain_text(answer.input_value())


def test_missing_model_is_explained_in_its_tab_without_a_traceback(page):
    tab = open_tab(page, "Summarization")
    tab.get_by_role("textbox", name="Text", exact=True).fill("A short article.")
    tab.get_by_role("button", name="Summarize").click()
    expect(
        page.get_by_text(re.compile("could not be loaded: the directory does not exist")).first
    ).to_be_visible()
    expect(tab.get_by_text(re.compile("not available"))).to_be_visible()
    assert "Traceback" not in page.content()
    tab = open_tab(page, "Sentiment")  # the other tabs keep working
    tab.get_by_role("button", name="Classify", exact=True).click()
    expect(tab.get_by_role("textbox", name="Sentiment")).not_to_have_value("")
