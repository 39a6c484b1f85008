"""Detect a generation stuck in a loop (pure, stdlib only).

OCR models fall into loops that repetition penalties cannot tell from a word a
page legitimately repeats, so vlmcli does not penalize: it watches the tail of
the output and stops once a unit repeats long enough (detection as a stop).
"""

from __future__ import annotations

from collections.abc import Sequence


def loop_start(tokens: Sequence[int], min_tokens: int, min_repeats: int, max_period: int = 256) -> int | None:
    """Index where a trailing loop begins, keeping its first occurrence, or None.

    A loop is a unit of `period` tokens repeated back to back at the end of
    `tokens`, at least `min_repeats` times and over at least `min_tokens` tokens.
    The returned index is the end of the first occurrence: truncating there keeps
    the text once.
    """
    length = len(tokens)
    for period in range(1, min(max_period, length // min_repeats) + 1):
        repeats = _trailing_repeats(tokens, period)
        if repeats >= min_repeats and repeats * period >= min_tokens:
            return length - (repeats - 1) * period
    return None


def _trailing_repeats(tokens: Sequence[int], period: int) -> int:
    """How many times the last `period` tokens repeat back to back at the end."""
    unit = list(tokens[-period:])
    repeats, end = 1, len(tokens) - period
    while end - period >= 0 and list(tokens[end - period:end]) == unit:
        repeats += 1
        end -= period
    return repeats
