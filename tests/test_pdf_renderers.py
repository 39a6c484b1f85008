"""PDFs through poppler and through PDFium (pypdfium2, in a child process): the same pages give the same text and
nearly the same pixels; PDFium's failures are typed like poppler's; without poppler, PDFium takes over."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from tools.pdfs import label_pages, text_pdf
from vlmcli import model
from vlmcli.cli import app
from vlmcli.errors import DependencyError, EncryptedPdfError, ExitCode, InputError, PageTimeoutError, RasterizerError
from vlmcli.inputs import documents, pages, pdfium, pdfs, poppler
from vlmcli.specs import PdfRenderer, PdfSpec

runner = CliRunner()
POPPLER = PdfSpec(renderer=PdfRenderer.poppler)
PDFIUM = PdfSpec(renderer=PdfRenderer.pdfium)
needs_poppler = pytest.mark.skipif(not poppler.installed(), reason="needs poppler-utils")


@pytest.fixture(scope="module")
def two_pages(tmp_path_factory):
    return text_pdf(tmp_path_factory.mktemp("pdfs") / "two.pdf", [
        "Quarterly report\nRevenue rose to 4,213 million in the third quarter.\nCosts were flat.",
        "Outlook\nThe board expects growth of 5 percent next year."])


@needs_poppler
def test_both_renderers_read_the_same_text_and_pixels(two_pages):
    texts = {name: [" ".join(t.split()) for t in pdfs.page_texts(two_pages, [1, 2], spec)]
             for name, spec in (("poppler", POPPLER), ("pdfium", PDFIUM))}
    assert texts["poppler"] == texts["pdfium"] and "4,213 million" in texts["poppler"][0]
    ref = documents.page_refs(two_pages, "1", PDFIUM)[0]
    drawn = [np.asarray(pages.load_page(ref, 768, True, spec), dtype=np.int16) for spec in (POPPLER, PDFIUM)]
    assert drawn[0].shape == drawn[1].shape
    assert np.abs(drawn[0] - drawn[1]).mean() < 2.0  # anti-aliasing differs a little; the page is the same
    assert (drawn[1] < 128).any()  # and there is text on it


def test_pdfium_reads_counts_sizes_and_labels(two_pages, tmp_path):
    assert pdfium.page_count(two_pages, PDFIUM) == 2
    assert pdfium.page_size_in(two_pages, 1, PDFIUM) == pytest.approx((8.27, 11.69), abs=0.01)
    labelled = label_pages(text_pdf(tmp_path / "l.pdf", ["a", "b", "c"]), [(0, "r", 1), (2, "D", 5)])
    assert pdfs.page_labels(labelled, POPPLER) == ["i", "ii", "5"]
    assert pdfs.page_labels(two_pages, POPPLER) == ["", ""]


def test_pdfium_errors_are_typed_like_poppler_s(two_pages, tmp_path):
    pikepdf = pytest.importorskip("pikepdf")
    locked = tmp_path / "locked.pdf"
    with pikepdf.open(two_pages) as document:
        document.save(locked, encryption=pikepdf.Encryption(user="pw", owner="owner", R=6))
    with pytest.raises(EncryptedPdfError, match="--password|password"):
        pdfium.page_count(locked, PDFIUM)
    assert pdfium.page_texts(locked, [2], PdfSpec(password="pw", renderer=PdfRenderer.pdfium))[0].startswith("Outlook")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj garbage\n")
    with pytest.raises(InputError, match="broken.pdf: not a readable PDF"):
        documents.page_refs(broken, None, PDFIUM)


@pytest.mark.parametrize(("script", "error"), [("sleep 30", PageTimeoutError), ("kill -SEGV $$", RasterizerError)])
def test_a_pdfium_hang_or_crash_fails_the_page_not_the_run(two_pages, monkeypatch, script, error):
    monkeypatch.setattr(pdfium, "WORKER", ["sh", "-c", script, "worker"])
    with pytest.raises(error, match="PDFium"):
        pdfium.render_page(two_pages, 1, 72, PdfSpec(timeout_s=0.5, renderer=PdfRenderer.pdfium))


def test_without_poppler_pdfium_opens_the_pdf(two_pages, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert pdfs.renderer(PdfSpec()) == "pdfium"
    seen = []
    monkeypatch.setattr(model, "load", lambda spec, split, **kw: seen.append(spec) or (_ for _ in ()).throw(SystemExit(0)))
    runner.invoke(app, ["ocr", str(two_pages)])
    assert seen, "the PDF opened through PDFium and the model is loaded next"
    monkeypatch.setattr(pdfium, "installed", lambda: False)
    result = runner.invoke(app, ["ocr", str(two_pages)])
    assert result.exit_code == ExitCode.dependency and "pypdfium2" in result.stderr and "poppler" in result.stderr
    with pytest.raises(DependencyError):
        pdfs.page_count(two_pages, PdfSpec())
    assert shutil.which("pdftoppm") is None
