"""Comparing texts the way a reader would (pure, stdlib only)."""

from __future__ import annotations

import re


def normalize(text: str) -> str:
    """Runs of whitespace folded to one space, ends stripped, case folded."""
    return re.sub(r"\s+", " ", text).strip().casefold()
