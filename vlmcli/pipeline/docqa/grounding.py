"""Is an answer on a page? Checked against the page's text, never taken from the model (pure; rapidfuzz).

Three tests, in order, on text folded the way a reader compares (Unicode NFKC,
case, whitespace, dashes and quotes unified, soft hyphens and words hyphenated
across lines joined): the answer occurs verbatim, as whole words ("exact"); every number in
the answer occurs on the page, thousands separators aside ("number"); or a
span of the page matches the answer at rapidfuzz's partial ratio >= 90
("fuzzy", for OCR'd text and small slips; answers of 4 characters or more).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass

from vlmcli.prompts import NOT_FOUND_REPLY

FUZZY_MIN_SCORE = 90.0
FUZZY_MIN_CHARS = 4  # shorter answers match some span of almost any page
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")
_QUOTES = {**dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032"), "'"),
           **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033"), '"')}
_NUMBER = re.compile(r"\d+(?:[.,\u00a0\u202f' ]\d+)*")
_GROUP_SEPARATOR = re.compile(r"(?<=\d)[,\u00a0\u202f' ](?=\d{3}(?!\d))")
_EDGE_PUNCTUATION = " \t\n\"'.,;:!?()[]"


@dataclass(frozen=True)
class Grounding:
    level: str  # "exact" | "number" | "fuzzy"
    evidence: str  # the line of the page text where the answer is
    score: float  # 100 for exact and number matches, rapidfuzz's partial ratio for fuzzy ones


def is_answer(answer: str) -> bool:
    """False for an empty reply and for the model's "not on this page" reply."""
    folded = fold(answer).strip(_EDGE_PUNCTUATION)
    return bool(folded) and not folded.startswith(fold(NOT_FOUND_REPLY))


def ground(answer: str, page_text: str) -> Grounding | None:
    """Where on the page the answer is, or None if the page text does not support it."""
    needle = fold(answer).strip(_EDGE_PUNCTUATION)
    if not needle:
        return None
    page = _FoldedPage(page_text)
    return _exact(needle, page) or _numbers(needle, page) or _fuzzy(needle, page)


def fold(text: str) -> str:
    """Text as a reader compares it: NFKC, case-folded, dashes and quotes unified, soft hyphens dropped,
    whitespace runs as one space."""
    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "").translate(_DASHES).translate(_QUOTES)
    return re.sub(r"\s+", " ", text).strip().casefold()


def numbers(text: str) -> list[str]:
    """The numbers in `text`, thousands separators removed ("4,213" and "4 213" are "4213")."""
    return [_GROUP_SEPARATOR.sub("", found) for found in _NUMBER.findall(text)]


class _FoldedPage:
    """The page's lines folded and joined, with where each original line starts in the folded text."""

    def __init__(self, text: str) -> None:
        self.lines = [line.strip() for line in text.splitlines() if fold(line)]
        self.starts: list[int] = []
        folded = ""
        for line in self.lines:
            piece = fold(line)
            if folded.endswith("-") and folded[-2:-1].isalpha() and piece[:1].islower():
                folded = folded[:-1]  # a word hyphenated across lines
            elif folded:
                folded += " "
            self.starts.append(len(folded))
            folded += piece
        self.text = folded

    def line_at(self, offset: int) -> str:
        return self.lines[max(0, bisect.bisect_right(self.starts, offset) - 1)] if self.lines else ""


def _exact(needle: str, page: _FoldedPage) -> Grounding | None:
    # Whole words only: "yes" is not in "eyes", "4 km" not in "14 km".
    found = re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", page.text)
    return Grounding("exact", page.line_at(found.start()), 100.0) if found else None


def _numbers(needle: str, page: _FoldedPage) -> Grounding | None:
    wanted = numbers(needle)
    if not wanted:
        return None
    lines = [set(numbers(fold(line))) for line in page.lines]
    if not set(wanted) <= set().union(*lines):
        return None
    first = next(index for index, found in enumerate(lines) if wanted[0] in found)
    return Grounding("number", page.lines[first], 100.0)


def _fuzzy(needle: str, page: _FoldedPage) -> Grounding | None:
    from rapidfuzz import fuzz

    if len(needle) < FUZZY_MIN_CHARS or not page.text:
        return None
    alignment = fuzz.partial_ratio_alignment(needle, page.text, score_cutoff=FUZZY_MIN_SCORE)
    if alignment is None:
        return None
    offset = alignment.dest_start if len(needle) <= len(page.text) else 0
    return Grounding("fuzzy", page.line_at(offset), alignment.score)
