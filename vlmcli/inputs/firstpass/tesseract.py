"""Tesseract through its command-line binary: a page image (PNG on stdin) in, its words with boxes out (TSV).

The binary, not a Python binding: it is what Debian and Homebrew install, it
runs in a child process that can be killed whole at the timeout (like poppler),
and its TSV gives each word's box, line and confidence. One thread
(OMP_THREAD_LIMIT=1), as OCRmyPDF runs it: the model has the other cores.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass

from vlmcli.errors import DependencyError, OcrEngineError, PageTimeoutError
from vlmcli.inputs.child import TimedOut, run_child, signal_name

TOOL = "tesseract"
INSTALL_HINT = ("install Tesseract: apt-get install tesseract-ocr tesseract-ocr-eng (Debian/Ubuntu; other languages: "
                "tesseract-ocr-LANG) or brew install tesseract (macOS); or pip install 'vlmcli[rapidocr]' and pass "
                "--first-pass rapidocr")
_WORD_LEVEL, _LINE_LEVEL = 5, 4


@dataclass(frozen=True)
class PixelWord:
    """A word as an engine found it: pixels of the image it was given, top-left origin."""

    text: str
    box_px: tuple[float, float, float, float]
    confidence: float  # 0..1
    line: tuple[int, ...]  # which line it is on (any key that is equal for the words of one line)


def installed() -> bool:
    return shutil.which(TOOL) is not None


@functools.cache
def version(timeout_s: float = 30) -> str:
    """'tesseract 5.3.0': the first line of `tesseract --version`."""
    output = _run(["--version"], timeout_s, "reporting its version")
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return lines[0].strip() if lines else TOOL


def read(png: bytes, languages: str, timeout_s: float) -> list[PixelWord]:
    """The words of one page image, in Tesseract's reading order. Each word's box spans its line's height (from
    its ascenders to its descenders), as a text layer's word boxes do."""
    output = _run(["stdin", "stdout", "-l", languages, "--psm", "3", "tsv"], timeout_s, "reading a page", stdin=png)
    return parse_tsv(output.decode("utf-8", "replace"))


def parse_tsv(tsv: str) -> list[PixelWord]:
    """Words from Tesseract's TSV (level 5 rows), each as high as its line (level 4 rows)."""
    rows = [line.split("\t") for line in tsv.splitlines()[1:]]
    lines: dict[tuple[int, ...], tuple[int, int]] = {}
    words = []
    for row in rows:
        if len(row) < 12 or not row[0].isdigit():
            continue
        level, key = int(row[0]), tuple(int(value) for value in row[1:5])
        left, top, width, height = (int(value) for value in row[6:10])
        if level == _LINE_LEVEL:
            lines[key] = (top, top + height)
        elif level == _WORD_LEVEL and row[11].strip():
            top, bottom = lines.get(key, (top, top + height))
            words.append(PixelWord(row[11].strip(), (left, top, left + width, bottom),
                                   max(float(row[10]), 0.0) / 100.0, key))
    return words


def _run(args: list[str], timeout_s: float, doing: str, stdin: bytes | None = None) -> bytes:
    executable = shutil.which(TOOL)
    if executable is None:
        raise DependencyError("Tesseract (tesseract) is not installed or not on PATH", hint=INSTALL_HINT)
    try:
        finished = run_child([executable, *args], timeout_s, stdin=stdin, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    except OSError as exc:
        raise DependencyError(f"Tesseract cannot be run ({exc.strerror or exc})", hint=INSTALL_HINT) from None
    except TimedOut:
        raise PageTimeoutError(f"Tesseract took over {timeout_s:g} s {doing}; stopped it",
                               hint="raise --page-timeout if the page is just large") from None
    stderr = finished.stderr.decode("utf-8", "replace")
    if finished.returncode < 0:
        raise OcrEngineError(f"Tesseract crashed ({signal_name(finished.returncode)}) {doing}")
    if finished.returncode != 0:
        if "Failed loading language" in stderr or "Error opening data file" in stderr:
            raise DependencyError(f"Tesseract has no data for the language(s) asked for ({_last_line(stderr)})",
                                  hint="install the language pack (apt-get install tesseract-ocr-LANG) or pass "
                                       "another --first-pass-lang")
        raise OcrEngineError(f"Tesseract failed {doing} ({_last_line(stderr) or f'exit status {finished.returncode}'})")
    return finished.stdout


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
