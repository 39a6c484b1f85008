"""The page at `/` of `vlmcli serve` in a real headless browser (Debian's chromium, driven by selenium through
Debian's chromedriver): a PDF is chosen, its pages arrive with their text, the searchable PDF downloads, a
question is answered with its page, Markdown tables render as tables, and the evidence is highlighted."""

from __future__ import annotations

import shutil
import time

import pytest
from conftest import draw_page

from tools.serving import running_server

httpx = pytest.importorskip("httpx", reason="the page test needs the vlmcli[serve] extra")
pytest.importorskip("fastapi", reason="the page test needs the vlmcli[serve] extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="the page test needs selenium (vlmcli[serve-test])")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = [pytest.mark.model, pytest.mark.serve, pytest.mark.browser,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="needs Debian's chromium and chromium-driver (scripts/setup.sh installs them)")]
# As root, with no network but loopback: no sandbox, and none of Chromium's own connections.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,900")


@pytest.fixture(scope="module")
def server(tiny_idefics3, tmp_path_factory):
    with running_server(tiny_idefics3, tmp_path_factory.mktemp("serve-page"), "--max-new-tokens", "8") as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _wait(condition, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("the page did not get there in time")


def test_the_page_reads_a_pdf_downloads_it_searchable_and_answers(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    pdf = tmp_path / "report.pdf"
    pages = [draw_page((300, 400), f"Invoice page {n} total {n * 7}") for n in (1, 2)]
    pages[0].save(pdf, save_all=True, append_images=pages[1:], resolution=72)
    expected = [line for line in httpx.post(server + "v1/ocr", files={"file": ("report.pdf", pdf.read_bytes())},
                                            timeout=120).text.splitlines()]

    browser.get(server)
    _wait(lambda: "tiny-idefics3" in browser.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "file").send_keys(str(pdf))
    cards = _wait(lambda: len(found := browser.find_elements(By.CSS_SELECTOR, "#pages .page")) == 2 and found)
    assert "read." in browser.find_element(By.ID, "status").text
    texts = [card.find_element(By.CSS_SELECTOR, ".text").get_attribute("data-raw") for card in cards]
    assert texts == [httpx.Response(200, content=line).json()["text"] for line in expected]
    for card in cards:
        assert card.find_element(By.TAG_NAME, "img").get_attribute("src").startswith("data:image/jpeg;base64,")

    browser.find_element(By.ID, "pdf").click()
    link = _wait(lambda: (found := browser.find_element(By.ID, "pdf-link")).is_displayed() and found)
    assert link.get_attribute("download") == "report.searchable.pdf"
    head = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => done(new TextDecoder().decode(b.slice(0, 5))));",
        link.get_attribute("href"))
    assert head == "%PDF-"

    browser.find_element(By.ID, "question").send_keys("What is the total?")
    browser.find_element(By.CSS_SELECTOR, "#ask button").click()
    answer = _wait(lambda: (found := browser.find_element(By.ID, "answer")).is_displayed() and found)
    assert answer.find_element(By.CSS_SELECTOR, ".text").text
    citation = answer.find_elements(By.CSS_SELECTOR, ".citation")
    if citation:  # the tiny model's answer may be "not found"; when cited, its page is shown
        assert citation[0].text.startswith("Page ")
        assert answer.find_element(By.TAG_NAME, "img").get_attribute("src").startswith("data:image/jpeg;base64,")
    browser.save_screenshot(str(tmp_path / "page.png"))


def test_markdown_tables_render_as_tables_and_nothing_becomes_a_tag(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server)
    _wait(lambda: browser.execute_script("return typeof renderMarkdown === 'function'"))
    text = "# Totals\n\n| item | price |\n|---|---:|\n| tea | **3.50** |\n| <img src=x onerror=alert(1)> | 1 |\n"
    browser.execute_script("document.getElementById('pages').append(pageCard(arguments[0]))",
                           {"page_number": 7, "text": text})
    card = browser.find_element(By.ID, "page-7")
    assert card.find_element(By.CSS_SELECTOR, ".text h1").text == "Totals"
    assert [th.text for th in card.find_elements(By.CSS_SELECTOR, "table th")] == ["item", "price"]
    cells = [td.text for td in card.find_elements(By.CSS_SELECTOR, "table td")]
    assert cells == ["tea", "3.50", "<img src=x onerror=alert(1)>", "1"]
    assert card.find_element(By.CSS_SELECTOR, "table td strong").text == "3.50"
    assert card.find_elements(By.CSS_SELECTOR, ".text img") == []  # the model's markup stays text


def test_an_answer_shows_its_page_and_highlights_the_evidence(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server)
    _wait(lambda: browser.execute_script("return typeof showAnswer === 'function'"))
    browser.execute_script("document.getElementById('pages').append(pageCard(arguments[0]))",
                           {"page_number": 2, "text": "Invoice 2024-7\nTotal due: 1,234.56 EUR"})
    browser.execute_script("showAnswer(arguments[0])", {
        "found": True, "answer": "1,234.56 EUR", "grounded": True,
        "citations": [{"page_number": 2, "page_label": "ii", "evidence": "Total due: 1,234.56 EUR"}]})
    answer = browser.find_element(By.ID, "answer")
    assert answer.find_element(By.CSS_SELECTOR, ".text").text == "1,234.56 EUR"
    assert answer.find_element(By.CSS_SELECTOR, ".citation").text == "Page 2 (“ii”)"
    card = browser.find_element(By.ID, "page-2")
    assert "cited" in card.get_attribute("class")
    assert card.find_element(By.TAG_NAME, "mark").text == "Total due: 1,234.56 EUR"
