"""RapidOCR (PP-OCR models on onnxruntime, all in its wheel) as a first pass, for machines without Tesseract.

Each page runs rapidocr_worker.py in a child process with a timeout, killed
with its group after it. Starting the child (importing onnxruntime, loading the
models) costs about as much as reading the page: the price of isolation.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import sys

from vlmcli.errors import DependencyError, OcrEngineError, PageTimeoutError
from vlmcli.inputs.child import TimedOut, run_child, signal_name
from vlmcli.inputs.firstpass.tesseract import PixelWord

INSTALL_HINT = "pip install 'vlmcli[rapidocr]' (RapidOCR and onnxruntime; the models come in the wheel)"
WORKER = [sys.executable, "-m", "vlmcli.inputs.firstpass.rapidocr_worker"]


def installed() -> bool:
    """Whether rapidocr and onnxruntime can be imported (checked without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("rapidocr", "onnxruntime"))


@functools.cache
def version() -> str:
    return f"rapidocr {importlib.metadata.version('rapidocr')} onnxruntime {importlib.metadata.version('onnxruntime')}"


def read(png: bytes, timeout_s: float) -> list[PixelWord]:
    """The words of one page image in RapidOCR's order, each word's box as high as its line's."""
    if not installed():
        raise DependencyError("RapidOCR (rapidocr, onnxruntime) is not installed", hint=INSTALL_HINT)
    try:
        finished = run_child(WORKER, timeout_s, stdin=png)
    except TimedOut:
        raise PageTimeoutError(f"RapidOCR took over {timeout_s:g} s reading a page; stopped it",
                               hint="raise --page-timeout if the page is just large") from None
    if finished.returncode < 0:
        raise OcrEngineError(f"RapidOCR crashed ({signal_name(finished.returncode)}) reading a page")
    if finished.returncode != 0:
        lines = finished.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OcrEngineError(f"RapidOCR failed reading a page ({lines[-1] if lines else finished.returncode})")
    try:
        return parse(json.loads(finished.stdout))
    except (ValueError, TypeError, IndexError) as error:
        raise OcrEngineError(f"RapidOCR's answer is not what its worker writes ({error})") from None


def parse(lines: list) -> list[PixelWord]:
    """Words from the worker's lines; the y-extent of a word is its line's."""
    words = []
    for line_number, (_text, _score, line_words) in enumerate(lines):
        boxes = [box for _word, _word_score, box in line_words]
        if not boxes:
            continue
        top, bottom = min(y for box in boxes for _, y in box), max(y for box in boxes for _, y in box)
        for word, score, box in line_words:
            if str(word).strip():
                xs = [x for x, _ in box]
                words.append(PixelWord(str(word).strip(), (min(xs), top, max(xs), bottom), float(score),
                                       (line_number,)))
    return words
