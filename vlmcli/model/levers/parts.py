"""Where a lever changes a model's vision tower: the children under the parts each family names (torch-free)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def children_under(model: Any, part_names: tuple[str, ...], wanted: Callable[[Any], bool]) -> list[tuple[Any, str]]:
    """(parent, attribute name) of every child for which `wanted` holds, under the model's `part_names`
    (Family.vision_parts); pairs rather than the children, so a lever can replace each one with setattr."""
    inner = getattr(model, "model", model)
    parts = [getattr(inner, name, None) for name in part_names]
    return [(parent, name) for part in filter(None, parts) for parent in part.modules()
            for name, child in parent.named_children() if wanted(child)]
