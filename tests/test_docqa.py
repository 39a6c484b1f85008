"""Questions over whole documents, orchestrated: real PDFs (text layers, scans, page labels), the real page cache,
and a fake answerer that answers from a script, so every path of the search is checked without a model."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tools.pdfs import label_pages, mixed_pdf, scanned_pdf, text_pdf
from vlmcli.cache.store import PageCache
from vlmcli.cli import app
from vlmcli.errors import ExitCode, InputError
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs import ocr as ocr_job
from vlmcli.pipeline import ask as asking
from vlmcli.pipeline.docqa import answer as docqa
from vlmcli.pipeline.docqa.answerer import PageAnswer
from vlmcli.pipeline.results import PageResult
from vlmcli.progress import NullProgress
from vlmcli.prompts import NOT_FOUND_REPLY, OCR_PROMPT
from vlmcli.specs import ANSWER_MAX_NEW_TOKENS, OCR_MAX_NEW_TOKENS, FirstPass, FirstPassSpec, RunSpec, SearchSpec

runner = CliRunner()
CONTRACT = [
    "Service agreement between Acme Ltd and Beta GmbH. Signed in Berlin.",
    "Payment is due within 45 days of the invoice date. Late payment costs 2 percent a month.",
    "Either party may end the agreement. The termination notice period is described in the annex.",
    "Confidential information stays confidential for five years after the end of the agreement.",
    "Annex. Termination notice period: 30 days, in writing, to the registered address.",
]
RUN = RunSpec.from_options(default_max_new_tokens=ANSWER_MAX_NEW_TOKENS)


class FakeAnswerer:
    """Answers from `answers` ({(file name, page number): text}, else NOT FOUND); transcribes from `ocr`."""

    def __init__(self, answers: dict | None = None, ocr: dict | None = None) -> None:
        self.answers, self.ocr = answers or {}, ocr or {}
        self.asked: list[tuple[str, int]] = []
        self.transcribed: list[tuple[str, int]] = []

    def transcribe(self, ref: PageRef) -> str:
        self.transcribed.append((ref.source.name, ref.page_number))
        if (ref.source.name, ref.page_number) not in self.ocr:
            raise InputError(f"{ref.source}: not expected to be transcribed")
        return self.ocr[ref.source.name, ref.page_number]

    def answer(self, ref: PageRef, question: str, on_text) -> PageAnswer:
        self.asked.append((ref.source.name, ref.page_number))
        text = self.answers.get((ref.source.name, ref.page_number), NOT_FOUND_REPLY)
        if on_text:
            on_text(text)
        return PageAnswer(text, 64, 3, 0.01, "stop")


@pytest.fixture(scope="module")
def contract(tmp_path_factory) -> Path:
    return text_pdf(tmp_path_factory.mktemp("docs") / "contract.pdf", CONTRACT)


def _ask(inputs, question, answerer, run=RUN, **search):
    """`ask` with the model transcribing scans (`--first-pass model`; tests/test_first_pass.py has the first pass)."""
    search = {"first_pass": FirstPassSpec(FirstPass.model), **search}
    return docqa.ask_documents(list(inputs), question, run, SearchSpec(**search), answerer=answerer)


def test_reads_in_rank_order_and_stops_at_the_first_grounded_answer(contract):
    answerer = FakeAnswerer({("contract.pdf", 5): "30 days"})
    answer = _ask([contract], "What is the termination notice period?", answerer)
    assert [p.page.ref.page_number for p in answer.ranked[:2]] == [5, 3]
    assert answerer.asked == [("contract.pdf", 5)]
    assert answer.line() == "30 days (page 5)" and answer.grounded and answer.grounding == "exact"
    assert answer.citation.evidence.startswith("Annex. Termination notice period: 30 days")


def test_an_answer_found_on_another_candidate_moves_the_citation(contract):
    answerer = FakeAnswerer({("contract.pdf", 3): "30 days"})  # read on page 3, written on page 5
    answer = _ask([contract], "termination period of the agreement?", answerer)
    assert answerer.asked[0] == ("contract.pdf", 3)
    assert answer.line() == "30 days (page 5)" and answer.moved_from.page_number == 3
    assert answer.record()["moved_from"] == {"source": str(contract), "page_number": 3}


def test_page_furniture_neither_grounds_nor_moves_a_citation(tmp_path):
    pages = [f"ACME quarterly report\n{text}\nPage {n} of 3" for n, text in enumerate(
        ["Revenue was 9 million.", "Revenue costs were 4 million.", "Revenue staff: 120 people."], start=1)]
    report = text_pdf(tmp_path / "report.pdf", pages)
    for wrong in ("3", "ACME quarterly report", "Revenue was 3 million"):
        answer = _ask([report], "What was the revenue?", FakeAnswerer({("report.pdf", 1): wrong}))
        assert len(answer.asked) == 3 and not answer.grounded and answer.moved_from is None, wrong
    answer = _ask([report], "What was the revenue?", FakeAnswerer({("report.pdf", 3): "4 million"}))
    assert answer.grounded and answer.citation.page_number == 2 and answer.moved_from.page_number == 3


def test_not_found_lists_the_pages_read_and_cites_nothing(contract):
    discarded = []
    answer = docqa.ask_documents([contract], "When does the agreement end?", RUN, SearchSpec(), answerer=FakeAnswerer(),
                                 on_discard=lambda: discarded.append(1))
    read = [r.ref.page_number for r in answer.asked]
    assert len(read) == 3 and len(discarded) == 3
    assert answer.line() == f"not found in pages {', '.join(map(str, read))}"
    record = answer.record()
    assert record["found"] is False and record["grounded"] is False and record["citations"] == []


def test_an_ungrounded_answer_is_flagged_and_strict_drops_it(contract):
    answerer = FakeAnswerer({("contract.pdf", 2): "90 days"})
    answer = _ask([contract], "When is payment due?", answerer)
    assert answer.line() == "90 days (page 2, not found in the page text)" and not answer.grounded
    assert answer.record()["citations"][0]["evidence"] is None
    strict = _ask([contract], "When is payment due?", FakeAnswerer({("contract.pdf", 2): "90 days"}), strict=True)
    assert strict.answer is None and strict.line() == "not found in page 2"  # the one page that matches


def test_top_k_and_pages_bound_what_is_read(contract):
    answerer = FakeAnswerer()
    _ask([contract], "agreement termination", answerer, top_k=1)
    assert len(answerer.asked) == 1
    answer = _ask([contract], "agreement termination", FakeAnswerer(), pages="4-5")
    assert sorted(p.page.ref.page_number for p in answer.ranked) == [4, 5]


def test_several_files_cite_the_file(contract, tmp_path):
    other = text_pdf(tmp_path / "invoice.pdf", ["Invoice 7 for March.", "Total due: 1,250.00 EUR"])
    answer = _ask([contract, other], "What is the total due?", FakeAnswerer({("invoice.pdf", 2): "1250.00 EUR"}))
    assert answer.line() == f"1250.00 EUR ({other}, page 2)" and answer.grounding == "exact"  # 1,250.00 = 1250.00
    missing = _ask([contract, other], "What is the total due?", FakeAnswerer())
    assert missing.line().startswith(f"not found in {other} page")


def test_printed_page_labels_join_the_citation(tmp_path):
    path = label_pages(text_pdf(tmp_path / "book.pdf", ["Preface.", "Contents.", "The capital is Paris."]),
                       [(0, "r", 1), (2, "D", 5)])
    answer = _ask([path], "What is the capital?", FakeAnswerer({("book.pdf", 3): "Paris"}))
    assert answer.line() == '(page 3, "5")'.join(["Paris ", ""]) and answer.citation.page_label == "5"


def test_scanned_pages_are_transcribed_once_then_come_from_the_cache(tmp_path):
    path = mixed_pdf(tmp_path / "mixed.pdf", ["Cover page of the lease.", "Rent is 900 EUR a month.",
                                              "Signed by both parties."], scanned={1})
    first = FakeAnswerer({("mixed.pdf", 2): "900 EUR"}, ocr={("mixed.pdf", 2): "Rent is 900 EUR a month."})
    answer = _ask([path], "How much is the rent?", first)
    assert first.transcribed == [("mixed.pdf", 2)]
    # A scan's text is the model's own transcription: finding the answer there only shows the model agrees
    # with itself, and neither the line nor the JSON claims more.
    assert answer.line() == "900 EUR (page 2, in the model's own transcription of it)"
    assert answer.record()["checked_against"] == "transcription" and answer.grounded
    sources = {p.page.ref.page_number: p.page.source for p in answer.ranked}
    assert sources == {1: "text_layer", 2: "ocr", 3: "text_layer"}
    again = FakeAnswerer({("mixed.pdf", 2): "900 EUR"})
    answer = _ask([path], "How much is the rent?", again)
    assert again.transcribed == [] and answer.ranked[0].page.source == "cached_ocr"
    uncached = FakeAnswerer(ocr={("mixed.pdf", 2): "Rent is 900 EUR a month."})
    _ask([path], "How much is the rent?", uncached, run=dataclasses.replace(RUN, cache=False))
    assert uncached.transcribed == [("mixed.pdf", 2)]


def test_a_page_that_cannot_be_transcribed_is_ranked_without_text(tmp_path):
    path = scanned_pdf(tmp_path / "scan.pdf", ["Only an image."])
    answer = _ask([path], "What is on it?", FakeAnswerer())  # its transcribe raises for every page
    assert answer.ranked[0].page.source == "none" and answer.line() == "not found in page 1"


def test_ocr_writes_through_so_ask_transcribes_nothing(monkeypatch, tmp_path):
    path = scanned_pdf(tmp_path / "scan.pdf", ["Deposit: 1,800 EUR.", "Keys: two."])
    ocr_run = RunSpec.from_options(default_max_new_tokens=OCR_MAX_NEW_TOKENS)
    texts = {1: "Deposit: 1,800 EUR.", 2: "Keys: two."}
    monkeypatch.setattr(ocr_job, "transcribe", lambda inputs, instruction, run, **kw: iter(
        [PageResult(path, n, texts[n], 64, 5, 0.1, "stop") for n in (1, 2)]))
    unkept = ocr_job.OcrRequest(inputs=(path,), instruction=OCR_PROMPT, run=dataclasses.replace(ocr_run, cache=False))
    assert ocr_job.run_ocr(unkept, write=lambda text: None).pages_ok == 2
    assert _ocr_pages() == 0  # --no-cache: nothing written through
    request = ocr_job.OcrRequest(inputs=(path,), instruction=OCR_PROMPT, run=ocr_run)
    assert ocr_job.run_ocr(request, write=lambda text: None).pages_ok == 2
    assert _ocr_pages() == 2
    answerer = FakeAnswerer({("scan.pdf", 1): "1800 EUR"})
    answer = _ask([path], "How much is the deposit?", answerer)
    assert answerer.transcribed == [] and answer.line() == "1800 EUR (page 1, in the model's own transcription of it)"
    assert {p.page.source for p in answer.ranked} == {"cached_ocr"}


def _ocr_pages() -> int:
    with PageCache() as cache:
        return cache.info().get("ocr_pages", 0)


# --- the command line -----------------------------------------------------------------------------------------


def test_the_cli_searches_pdfs_and_reads_one_page_with_page(monkeypatch, contract, page_png):
    searched, single = [], []
    real = docqa.ask_documents
    monkeypatch.setattr(docqa, "ask_documents", lambda files, question, run, search, **kw: searched.append(
        (files, question, run, search)) or real(files, question, run, SearchSpec(),
                                                 answerer=FakeAnswerer({("contract.pdf", 5): "30 days"})))
    monkeypatch.setattr(asking, "ask", lambda files, question, run, **kw: single.append(kw) or _FakeAnswer())
    result = runner.invoke(app, ["ask", str(contract), "termination notice period?", "--top-k", "2", "--strict",
                                 "--pages", "2-5"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "30 days (page 5)\n"
    files, question, run, search = searched[0]
    assert search == SearchSpec(pages="2-5", top_k=2, strict=True) and run.generation.max_new_tokens == 512
    assert runner.invoke(app, ["ask", str(contract), "q", "--page", "2"]).exit_code == 0
    assert runner.invoke(app, ["ask", str(page_png), "q"]).exit_code == 0
    assert [kw["page_number"] for kw in single] == [2, 1] and len(searched) == 1
    both = runner.invoke(app, ["ask", str(contract), "q", "--page", "2", "--pages", "1-3"])
    assert both.exit_code == ExitCode.usage and "--page and --pages" in both.stderr


class _FakeAnswer:
    text, image_tokens, new_tokens, seconds, finish_reason = "42", 64, 2, 0.1, "stop"


def test_the_cli_json_and_not_found_exit_zero(monkeypatch, contract):
    monkeypatch.setattr(docqa, "VlmAnswerer", lambda *args, **kwargs: FakeAnswerer({("contract.pdf", 5): "30 days"}))
    result = runner.invoke(app, ["ask", str(contract), "termination notice period?", "-f", "json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["answer"] == "30 days" and record["found"] and record["grounded"]
    assert record["citations"] == [{"source": str(contract), "page_number": 5, "page_label": None,
                                    "evidence": "Annex. Termination notice period: 30 days, in writing, to the "
                                                "registered address.", "checked_against": "text_layer"}]
    assert record["checked_against"] == "text_layer" and record["pages_read"][0]["checked_against"] == "text_layer"
    assert record["pages_ranked"][0] == {"source": str(contract), "page_number": 5,
                                         "score": record["pages_ranked"][0]["score"], "text_source": "text_layer"}
    assert [p["page_number"] for p in record["pages_read"]] == [5] and record["new_tokens"] == 3
    assert {"image_tokens", "seconds"} <= set(record)
    monkeypatch.setattr(docqa, "VlmAnswerer", lambda *args, **kwargs: FakeAnswerer())
    result = runner.invoke(app, ["ask", str(contract), "Who is the landlord?"])
    assert result.exit_code == 0 and result.stdout.startswith("not found in page")


def test_a_damaged_cache_warns_and_the_answer_still_comes(monkeypatch, contract, tmp_path):
    monkeypatch.setenv("VLMCLI_CACHE_DIR", str(tmp_path))
    (tmp_path / "pages.sqlite3").write_bytes(b"not a database at all" * 50)
    monkeypatch.setattr(docqa, "VlmAnswerer", lambda *args, **kwargs: FakeAnswerer({("contract.pdf", 5): "30 days"}))
    result = runner.invoke(app, ["ask", str(contract), "termination notice period?"])
    assert result.exit_code == 0 and result.stdout == "30 days (page 5)\n"
    assert result.stderr.count("was damaged") == 1 and "Traceback" not in result.stderr


def test_a_folder_is_searched_and_an_unreadable_file_in_it_skipped(contract, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "contract.pdf").write_bytes(contract.read_bytes())
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    notes = []

    class Notes(NullProgress):
        def note(self, text, *, detail=False):
            notes.append(text)

    answer = docqa.ask_documents([folder], "termination notice period?", RUN, SearchSpec(),
                                 answerer=FakeAnswerer({("contract.pdf", 5): "30 days"}), progress=Notes())
    assert answer.line() == f"30 days ({folder / 'contract.pdf'}, page 5)"
    assert any("broken.pdf" in note and "skipped" in note for note in notes)


def test_a_rejected_streamed_answer_is_taken_off_the_terminal(capsys):
    from vlmcli.cli.ask import _Terminal
    from vlmcli.cli.console import RichProgress

    terminal = _Terminal(RichProgress())  # stderr is no terminal here: it draws nothing
    terminal.write("NOT FOUND")
    terminal.write("\nsecond line")
    terminal.erase()
    assert capsys.readouterr().out == "NOT FOUND\nsecond line" + "\r\x1b[2K" + "\x1b[1A\x1b[2K"
    terminal.erase()  # nothing left to take back
    assert capsys.readouterr().out == ""


def test_the_cli_imports_no_search_library():
    """`ask --help` loads neither the search and checking libraries, nor the page cache (sqlite3: the cache's
    module imports it at the top, and only the command body imports that module), nor torch."""
    code = ("import sys, vlmcli.cli; from vlmcli.cli import main; sys.argv = ['vlmcli', 'ask', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "loaded = {'bm25s', 'Stemmer', 'rapidfuzz', 'text_to_num', 'pypdfium2', 'platformdirs', 'sqlite3',\n"
            "          'vlmcli.cache.store', 'torch'}\n"
            "loaded &= set(sys.modules)\n"
            "assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1000:]


def _model_answers(monkeypatch, text: str) -> list[str]:
    """The reading model "answers" `text` from whatever page it is shown: the one function that generates an
    answer from a page is replaced; text layers, ranking, checking and the JSON are the real ones."""
    from vlmcli.pipeline.docqa.answerer import VlmAnswerer

    questions = []

    def answer(self, ref, question, on_text):
        questions.append(question)
        return PageAnswer(text, 64, 3, 0.01, "stop")

    monkeypatch.setattr(VlmAnswerer, "answer", answer)
    return questions


@pytest.mark.parametrize("wrong", ["2 weeks", "45 years", "The fee is 2 million dollars"])
def test_strict_json_refuses_an_answer_whose_words_are_not_on_the_page(monkeypatch, contract, wrong):
    asked = _model_answers(monkeypatch, wrong)
    result = runner.invoke(app, ["ask", str(contract), "When is payment due?", "--strict", "-f", "json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert asked and record["pages_read"][0]["page_number"] == 2  # the page with "45 days ... 2 percent"
    assert record["answer"] is None and not record["found"] and not record["grounded"]
    assert record["citations"] == [] and record["checked_against"] is None
    assert {read["answer"] for read in record["pages_read"]} == {wrong}
    assert all(read["grounding"] is None and read["checked_against"] == "text_layer" for read in record["pages_read"])
    plain = runner.invoke(app, ["ask", str(contract), "When is payment due?", "--strict"])
    assert plain.stdout.startswith("not found in page 2")


@pytest.mark.parametrize("right", ["45 days", "forty-five days", "within 45 days of the invoice date"])
def test_strict_json_keeps_an_answer_the_page_text_holds(monkeypatch, contract, right):
    _model_answers(monkeypatch, right)
    result = runner.invoke(app, ["ask", str(contract), "When is payment due?", "--strict", "-f", "json"])
    record = json.loads(result.stdout)
    assert record["answer"] == right and record["grounded"] and record["checked_against"] == "text_layer"
    assert record["citations"][0]["page_number"] == 2
    assert record["citations"][0]["evidence"].startswith("Payment is due within 45 days")


def test_a_page_number_does_not_ground_an_answer_from_the_cli(monkeypatch, tmp_path):
    pages = [f"Page {n} of 3\n{text}" for n, text in enumerate(
        ["Revenue was 9 million.", "Costs were 4 million.", "Staff: 120 people."], start=1)]
    report = text_pdf(tmp_path / "report.pdf", pages)
    _model_answers(monkeypatch, "Revenue was 1 million")
    record = json.loads(runner.invoke(app, ["ask", str(report), "What was the revenue?", "-f", "json"]).stdout)
    assert record["pages_read"][0]["page_number"] == 1 and record["answer"] == "Revenue was 1 million"
    assert not record["grounded"] and record["citations"][0]["evidence"] is None
    _model_answers(monkeypatch, "9 million")
    record = json.loads(runner.invoke(app, ["ask", str(report), "What was the revenue?", "-f", "json"]).stdout)
    assert record["grounded"] and record["citations"][0]["evidence"] == "Revenue was 9 million."
