"""Words on a page and where they are (pure; stdlib, rapidfuzz for the alignment).

A `Word` is a word's text, its box in PDF points from the page's top-left
corner (x0, y0, x1, y1, as `pdftotext -bbox` gives a text layer's words) and
how sure the reader was of it. `PageWords` holds one page's words in reading
order with the page's size: what a first pass found (inputs/firstpass), or a
model's transcription laid onto those boxes (align.py). hocr.py and alto.py
write them in the two formats OCR tools exchange.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x0, y0, x1, y1: PDF points, top-left origin


@dataclass(frozen=True)
class Word:
    text: str
    bbox_pt: Box
    confidence: float | None  # 0..1 as the reader gave it; None where the box was interpolated, not read
    line: int = 0  # the line the word is on, counted in reading order from 0

    def record(self) -> dict:
        """The word in `-f json`: text, box rounded to 0.01 pt, confidence."""
        return {"text": self.text, "bbox_pt": [round(value, 2) for value in self.bbox_pt],
                "confidence": None if self.confidence is None else round(self.confidence, 3)}


@dataclass(frozen=True)
class PageWords:
    """A page's words, in reading order, and the page they are on."""

    width_pt: float
    height_pt: float
    words: tuple[Word, ...]
    engine: str  # who read the words ("tesseract 5.3.0"); who placed them, for aligned words
    dpi: float  # the resolution the page was read at (hOCR and ALTO give pixels at it)

    def text(self) -> str:
        """The words as lines of text (a page's text for ranking and for checking answers)."""
        lines: list[list[str]] = []
        last_line = None
        for word in self.words:
            if word.line != last_line:
                lines.append([])
                last_line = word.line
            lines[-1].append(word.text)
        return "\n".join(" ".join(line) for line in lines)

    def lines(self) -> list[list[Word]]:
        """The words grouped by line, in order."""
        grouped: dict[int, list[Word]] = {}
        for word in self.words:
            grouped.setdefault(word.line, []).append(word)
        return list(grouped.values())

    def to_json(self) -> str:
        return json.dumps({"width_pt": self.width_pt, "height_pt": self.height_pt, "engine": self.engine,
                           "dpi": self.dpi, "words": [[w.text, *w.bbox_pt, w.confidence, w.line] for w in self.words]},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str) -> PageWords:
        page = json.loads(data)
        words = tuple(Word(text, (x0, y0, x1, y1), confidence, line)
                      for text, x0, y0, x1, y1, confidence, line in page["words"])
        return cls(page["width_pt"], page["height_pt"], words, page["engine"], page["dpi"])


def xml_text(text: str) -> str:
    """`text` as XML 1.0 can carry it: control characters other than tab and newline dropped."""
    return "".join(char for char in text if char in "\t\n" or ord(char) >= 0x20)


def union(boxes: list[Box]) -> Box:
    """The smallest box holding all of `boxes` (at least one)."""
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    total = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / total if total > 0 else 0.0
