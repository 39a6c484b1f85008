"""Questions over documents with the real tiny model: the whole command end to end, and the cached image features
giving the same answer as the pixels while the vision tower does not run again."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import always_load, load_run
from tools.pdfs import mixed_pdf
from vlmcli.cache.store import PageCache
from vlmcli.cli import app
from vlmcli.inputs.documents import page_refs
from vlmcli.pipeline.docqa.answerer import VlmAnswerer
from vlmcli.progress import NullProgress
from vlmcli.specs import RunSpec

pytestmark = pytest.mark.model
runner = CliRunner()
PAGES = ["Lease for the flat in Rue Verte.", "The monthly rent is 900 EUR, due on the first day.",
         "Signed by the landlord and the tenant."]


@pytest.fixture(scope="module")
def loaded(tiny_idefics3):
    return load_run(RunSpec.from_options(model=str(tiny_idefics3)))


def test_ask_a_whole_pdf_end_to_end(tiny_idefics3, loaded, tmp_path, monkeypatch):
    always_load(monkeypatch, loaded)  # the command loads this checkpoint; once for the module is enough
    path = mixed_pdf(tmp_path / "lease.pdf", PAGES, scanned=set())
    args = ["ask", str(path), "What is the monthly rent?", "--model", str(tiny_idefics3), "--max-new-tokens", "4",
            "--top-k", "2", "-f", "json", "-v"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert {p["text_source"] for p in record["pages_ranked"]} == {"text_layer"}
    assert record["pages_ranked"][0]["page_number"] == 2
    # Only page 2 shares a word with the question, so only it is read, and --top-k 2 reads no other.
    assert [p["page_number"] for p in record["pages_read"]] == [2] and record["pages_read"][0]["image_tokens"] > 0
    assert record["pages_read"][0]["new_tokens"] == 4 and record["new_tokens"] == 4
    # A random model's four tokens are noise, none of them words of the page: the answer is kept, cited to the
    # page that was read, and flagged as not found in its text layer.
    answer = record["pages_read"][0]["answer"]
    assert answer.strip() and record["answer"] == answer and record["found"] and not record["grounded"]
    assert record["grounding"] is None and record["checked_against"] == "text_layer"
    assert record["citations"] == [{"source": str(path), "page_number": 2, "page_label": None, "evidence": None,
                                    "checked_against": "text_layer"}]
    assert "text from text_layer" in result.stderr and "PDFs are read by" in result.stderr
    again = json.loads(runner.invoke(app, args).stdout)  # the same question again: the page's features are cached
    assert again["pages_read"][0]["features_cached"] is True and again["answer"] == record["answer"]


def test_cached_features_answer_as_the_pixels_do(tiny_idefics3, loaded, tmp_path, monkeypatch):
    path = mixed_pdf(tmp_path / "lease.pdf", PAGES, scanned=set())
    run = RunSpec.from_options(model=str(tiny_idefics3), max_new_tokens=8)
    always_load(monkeypatch, loaded)
    ref = page_refs(path, "2", run.pdf)[0]
    tower_calls = []
    encode = loaded.model.get_image_features
    monkeypatch.setattr(loaded.model, "get_image_features", lambda *a, **kw: tower_calls.append(1) or encode(*a, **kw))
    pixels = VlmAnswerer(run, run, NullProgress()).answer(ref, "What is the rent?", None)
    with PageCache(tmp_path / "cache") as cache:
        answerer = VlmAnswerer(run, run, NullProgress(), cache, "key")
        first = answerer.answer(ref, "What is the rent?", None)
        calls_before = len(tower_calls)
        second = answerer.answer(ref, "What is the rent?", None)
    assert not first.features_cached and second.features_cached and len(tower_calls) == calls_before
    assert pixels.text == first.text == second.text and pixels.new_tokens == second.new_tokens


def test_the_reader_transcribes_a_scanned_page(tiny_idefics3, loaded, tmp_path, monkeypatch):
    path = mixed_pdf(tmp_path / "lease.pdf", PAGES, scanned={0})
    run = RunSpec.from_options(model=str(tiny_idefics3), max_new_tokens=4)
    always_load(monkeypatch, loaded)
    text = VlmAnswerer(run, run, NullProgress()).transcribe(page_refs(path, "1", run.pdf)[0])
    assert isinstance(text, str) and text
