"""Citations: computed from the page that was read and checked, never generated (pure).

`page_number` is the 1-based index of the page in its file (as in `ocr --format
json`); `page_label` is the printed label from the PDF's `/PageLabels` ("xii",
"A-3"), shown when the PDF defines one that differs from the index.
`checked_against` says what the answer was checked against: the PDF's text layer,
a classic OCR engine's words (the first pass) for a page without one, or the reading
model's own transcription of such a page (a check that the model agrees with itself,
not with the page), and the citation text says no more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What an answer was checked against.
TEXT_LAYER, FIRST_PASS, TRANSCRIPTION = "text_layer", "first_pass", "transcription"
_READ_BY = {TRANSCRIPTION: "the model's own transcription of it", FIRST_PASS: "the OCR engine's reading of it"}


@dataclass(frozen=True)
class Citation:
    source: Path
    page_number: int
    page_label: str | None = None
    evidence: str | None = None  # the line(s) of the page text that hold the answer; None when it is not there
    checked_against: str | None = None  # TEXT_LAYER, FIRST_PASS, TRANSCRIPTION; None: the page has no text to check

    def record(self) -> dict:
        return {"source": str(self.source), "page_number": self.page_number, "page_label": self.page_label,
                "evidence": self.evidence, "checked_against": self.checked_against}


def cite(citation: Citation, *, name_file: bool, grounded: bool = True) -> str:
    """`(page 12)`, `(report.pdf, page 12, "x")`, `(page 12, not found in the page text)`,
    `(page 3, in the model's own transcription of it)`, `(page 3, in the OCR engine's reading of it)`."""
    parts = [str(citation.source)] if name_file else []
    shown = citation.page_label and citation.page_label != str(citation.page_number)
    label = f', "{citation.page_label}"' if shown else ""
    parts.append(f"page {citation.page_number}{label}")
    if citation.checked_against in _READ_BY:
        read_by = _READ_BY[citation.checked_against]
        parts.append(f"in {read_by}" if grounded else f"not found in {read_by}")
    elif citation.checked_against is None:
        parts.append("no page text to check the answer against")
    elif not grounded:
        parts.append("not found in the page text")
    return f"({', '.join(parts)})"


def not_found(pages_read: list[tuple[Path, int]], *, name_file: bool) -> str:
    """`not found in pages 4, 9, 12`, or per file: `not found in a.pdf pages 4, 9; b.pdf page 2`."""
    if not pages_read:
        return "not found (no page was read)"
    by_file: dict[Path, list[int]] = {}
    for source, page_number in pages_read:
        by_file.setdefault(source, []).append(page_number)
    groups = [(f"{source} " if name_file else "") + _pages(numbers) for source, numbers in by_file.items()]
    return "not found in " + "; ".join(groups)


def _pages(numbers: list[int]) -> str:
    return ("page " if len(numbers) == 1 else "pages ") + ", ".join(map(str, numbers))
