"""vlmcli as OCRmyPDF's OCR engine (vlmcli/ocrmypdf_plugin.py): the real `ocrmypdf` command with the plugin on a
two-page scan and a tiny model; and the page tree it hands OCRmyPDF, whose words sit on the first pass's boxes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.scans import scan, scanned_pdf
from vlmcli.inputs.firstpass import tesseract
from vlmcli.pipeline.results import PageResult
from vlmcli.words import iou

pytest.importorskip("ocrmypdf")
OCRMYPDF = Path(sys.executable).parent / "ocrmypdf"
needs_tesseract = pytest.mark.skipif(not tesseract.installed(), reason="needs tesseract-ocr")


@pytest.mark.model
def test_ocrmypdf_runs_with_vlmcli_as_its_engine(tiny_idefics3, tmp_path):
    path, _ = scanned_pdf(tmp_path / "scan.pdf", [["Invoice 7 for March.", "Total due: 1,250.00 EUR."],
                                                  ["Page two: signed by both parties."]], dpi=100)
    out, sidecar = tmp_path / "out.pdf", tmp_path / "out.txt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(OCRMYPDF), "--plugin", "vlmcli.ocrmypdf_plugin", "--vlmcli-model", str(tiny_idefics3),
                             "--vlmcli-max-new-tokens", "8", "--jobs", "1", "--sidecar", str(sidecar), str(path),
                             str(out)], capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Pages:\s+2\n", info) and "vlmcli" in info  # OCRmyPDF's creator tag names the engine
    pages = sidecar.read_text().split("\f")
    assert len([page for page in pages if page.strip()]) == 2  # the model wrote something on each page
    if shutil.which("pdftotext"):
        layer = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
        assert layer.split() == sidecar.read_text().split()  # its text layer is the model's text


@needs_tesseract
def test_the_page_tree_puts_the_model_s_words_on_the_first_pass_boxes(monkeypatch, tmp_path):
    from vlmcli import ocrmypdf_plugin
    from vlmcli.pipeline import page as page_module

    lines = ["Total revenue was 4,213 million.", "Notice period: 30 days."]
    image, drawn = scan(lines, dpi=150, size_in=(4.5, 1.4), margin_in=0.3)
    path = tmp_path / "page.png"
    image.save(path, dpi=(150, 150))
    model_text = "Total revenue was 4,213 million.\nNotice period: 30 days."
    monkeypatch.setattr(ocrmypdf_plugin, "_model", lambda run: object())
    monkeypatch.setattr(page_module, "prepare_page", lambda *args: None)
    monkeypatch.setattr(page_module, "transcribe_prepared", lambda loaded, ref, prepared, run: PageResult(
        ref.source, 1, model_text, 1, 1, 0.0, "stop"))
    tree, text = ocrmypdf_plugin.VlmcliOcrEngine.generate_ocr(path, None, page_number=0)
    assert text == model_text and tree.bbox.right == image.width and tree.dpi == pytest.approx(150, abs=0.1)
    words = tree.iter_by_class("ocrx_word")
    assert [w.text for w in words] == model_text.split() and len(tree.iter_by_class("ocr_line")) == 2
    overlaps = [iou((w.bbox.left, w.bbox.top, w.bbox.right, w.bbox.bottom), d.box_px) for w, d in zip(words, drawn)]
    assert sorted(overlaps)[len(overlaps) // 2] > 0.7, overlaps
