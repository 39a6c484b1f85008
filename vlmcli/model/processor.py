"""The processor's resolution for a loaded model: step it down after out-of-memory, or copy it at another setting
(each family's knob is in model/families/resolution.py; this works on the objects it is given and imports no model
library, so the ladder can be tested without a model)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from vlmcli.specs import SplitSpec


def lower_resolution(loaded: Any) -> Any | None:
    """A copy of a `LoadedModel` whose processor works at the family's next setting down, or None at the lowest.

    The processor is a copy, so the page being prepared ahead on the prefetch thread keeps the original.
    """
    lower = loaded.family.resolution.lower(loaded.processor)
    return None if lower is None else at_resolution(loaded, lower)


def at_resolution(loaded: Any, split: SplitSpec) -> Any:
    """A copy of a `LoadedModel` whose processor works at `split` (what it leaves unset stays as loaded).

    The copy shares the model; the original processor is not touched.
    """
    processor = copy.deepcopy(loaded.processor)
    max_input_px = loaded.family.resolution.configure(processor, split)
    return dataclasses.replace(loaded, processor=processor, max_input_px=max_input_px)


def resolution(loaded: Any) -> dict:
    """What the processor works at, as recorded per page: longest edge in px and whether it splits."""
    return loaded.family.resolution.describe(loaded.processor)
