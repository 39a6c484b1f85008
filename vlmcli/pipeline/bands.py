"""Merging the transcriptions of a page's bands into one text (pure).

Bands overlap (inputs/geometry.py), so the lines near a band's lower edge are
read again at the top of the next band; they are kept once.
"""

from __future__ import annotations

import difflib

from vlmcli.text import normalize

MERGE_SIMILARITY = 0.85


def merge_band_texts(texts: list[str]) -> str:
    """Join band transcriptions, dropping the lines repeated where bands overlap."""
    merged: list[str] = []
    for text in texts:
        lines = text.strip("\n").splitlines()
        merged = _join(merged, lines)
    return "\n".join(merged)


def _join(previous: list[str], following: list[str]) -> list[str]:
    if not previous:
        return list(following)
    # The last line of a band may be a line cut in half by the band's edge: it is
    # allowed to differ, since the next band holds that line whole.
    for dropped_tail in (0, 1):
        head = previous[: len(previous) - dropped_tail]
        for size in range(min(len(head), len(following)), 0, -1):
            pairs = list(zip(head[-size:], following[:size]))
            if all(_same_line(a, b) for a, b in pairs):
                # A line cut by a band edge is the shorter reading of the two.
                overlap = [max(a, b, key=len) for a, b in pairs]
                return head[:-size] + overlap + following[size:]
    return previous + following


def _same_line(a: str, b: str) -> bool:
    a, b = normalize(a), normalize(b)
    if not a or not b:
        return a == b
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= MERGE_SIMILARITY
