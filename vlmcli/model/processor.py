"""The processor's resolution: map --split/--longest-edge onto it, and step it down after out-of-memory.

Works on the processor object it is given and imports no model library, so the
ladder can be tested without a model.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from vlmcli.specs import SplitSpec


def configure_processor(processor: Any, model_type: str, split: SplitSpec) -> int:
    """Map --split/--longest-edge onto the processor's own settings; return its input edge in px.

    The settings go on the processor instance, not into each call: Idefics2's
    processor counts image tokens from the instance attribute, so a per-call
    `do_image_splitting` would give pixels and tokens that disagree.
    """
    image_processor = processor.image_processor
    if split.split is not None:
        image_processor.do_image_splitting = split.split
    if model_type == "idefics2":
        if split.longest_edge_px:
            shortest = min(image_processor.size.get("shortest_edge", 378), split.longest_edge_px)
            image_processor.size = {"longest_edge": split.longest_edge_px, "shortest_edge": shortest}
        crops_per_side = 2 if image_processor.do_image_splitting else 1
        return int(image_processor.size["longest_edge"]) * crops_per_side
    if split.longest_edge_px:
        image_processor.size = {"longest_edge": split.longest_edge_px}
    return int(image_processor.size["longest_edge"])


def lower_resolution(loaded: Any) -> Any | None:
    """A copy of a `LoadedModel` whose processor makes fewer sub-images, or None at the lowest setting.

    The ladder (Idefics3/SmolVLM): halve the longest edge down to one sub-image,
    then stop splitting. Idefics2: stop splitting. The processor is a copy, so
    the page being prepared ahead on the prefetch thread keeps the original.
    """
    image_processor = loaded.processor.image_processor
    splitting = bool(getattr(image_processor, "do_image_splitting", False))
    edge_px = int(image_processor.size["longest_edge"])
    sub_image_px = int(getattr(image_processor, "max_image_size", {}).get("longest_edge", edge_px))
    if loaded.model_type != "idefics2" and splitting and edge_px > sub_image_px:
        lower = SplitSpec(split=True, longest_edge_px=max(sub_image_px, edge_px // 2))
    elif splitting:
        lower = SplitSpec(split=False)
    else:
        return None
    return at_resolution(loaded, lower)


def at_resolution(loaded: Any, split: SplitSpec) -> Any:
    """A copy of a `LoadedModel` whose processor works at `split` (what it leaves unset stays as loaded).

    The copy shares the model; the original processor is not touched.
    """
    processor = copy.deepcopy(loaded.processor)
    max_input_px = configure_processor(processor, loaded.model_type, split)
    return dataclasses.replace(loaded, processor=processor, max_input_px=max_input_px)


def resolution(loaded: Any) -> dict:
    """What the processor works at, as recorded per page: longest edge in px and whether it splits."""
    image_processor = loaded.processor.image_processor
    return {"longest_edge_px": int(image_processor.size["longest_edge"]),
            "split": bool(getattr(image_processor, "do_image_splitting", False))}
