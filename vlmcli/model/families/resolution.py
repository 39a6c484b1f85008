"""The resolution knob of each family: how `--split` / `--longest-edge` map onto its processor, the longest page
edge it takes before shrinking (what pages are rendered and banded for), and its out-of-memory ladder (pure: it
works on the processor object it is given and imports no model library).

The settings go on the processor instance, not into each call: Idefics2's processor counts image tokens from the
instance, so per-call settings would give pixels and tokens that disagree; the other families read them there too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from vlmcli.specs import SplitSpec

UNSTATED_EDGE_PX = 2048  # a processor that states no size: pages are rendered for this longest edge


class Resolution(Protocol):
    def configure(self, processor: Any, split: SplitSpec) -> int:
        """Put `split` on the processor (what it leaves unset stays the checkpoint's); the input edge in px."""

    def lower(self, processor: Any) -> SplitSpec | None:
        """The next setting down after running out of memory, or None at the lowest."""

    def describe(self, processor: Any) -> dict:
        """What the processor works at, as each page records it: `longest_edge_px` and `split`."""


@dataclass(frozen=True)
class Tiles:
    """Idefics3 / SmolVLM / granite-docling: the page scaled to `size.longest_edge`, cut into square sub-images of
    `max_image_size`, plus a global image. Ladder: halve the longest edge down to one sub-image, then no splitting."""

    def configure(self, processor: Any, split: SplitSpec) -> int:
        image_processor = processor.image_processor
        if split.split is not None:
            image_processor.do_image_splitting = split.split
        if split.longest_edge_px:
            image_processor.size = {"longest_edge": split.longest_edge_px}
        return int(image_processor.size["longest_edge"])

    def lower(self, processor: Any) -> SplitSpec | None:
        image_processor = processor.image_processor
        splitting = bool(getattr(image_processor, "do_image_splitting", False))
        edge_px = int(image_processor.size["longest_edge"])
        sub_image_px = int(getattr(image_processor, "max_image_size", {}).get("longest_edge", edge_px))
        if splitting and edge_px > sub_image_px:
            return SplitSpec(split=True, longest_edge_px=max(sub_image_px, edge_px // 2))
        return SplitSpec(split=False) if splitting else None

    def describe(self, processor: Any) -> dict:
        image_processor = processor.image_processor
        return {"longest_edge_px": int(image_processor.size["longest_edge"]),
                "split": bool(getattr(image_processor, "do_image_splitting", False))}


@dataclass(frozen=True)
class Crops:
    """Idefics2: four crops and the whole image; `--longest-edge` is each crop's limit. Ladder: stop splitting."""

    def configure(self, processor: Any, split: SplitSpec) -> int:
        image_processor = processor.image_processor
        if split.split is not None:
            image_processor.do_image_splitting = split.split
        if split.longest_edge_px:
            shortest = min(image_processor.size.get("shortest_edge", 378), split.longest_edge_px)
            image_processor.size = {"longest_edge": split.longest_edge_px, "shortest_edge": shortest}
        crops_per_side = 2 if image_processor.do_image_splitting else 1
        return int(image_processor.size["longest_edge"]) * crops_per_side

    def lower(self, processor: Any) -> SplitSpec | None:
        return SplitSpec(split=False) if getattr(processor.image_processor, "do_image_splitting", False) else None

    def describe(self, processor: Any) -> dict:
        return Tiles().describe(processor)


@dataclass(frozen=True)
class LongestEdge:
    """A processor that scales an image to a longest edge and reads it whole (Pixtral's, LightOnOCR's): the knob
    is that edge; `--split` does not apply. Ladder: halve the edge down to `floor_px`."""

    floor_px: int = 448

    def configure(self, processor: Any, split: SplitSpec) -> int:
        image_processor = processor.image_processor
        size = dict(getattr(image_processor, "size", None) or {})
        if split.longest_edge_px:
            size["longest_edge"] = split.longest_edge_px
            image_processor.size = size
        return int(size.get("longest_edge") or UNSTATED_EDGE_PX)

    def lower(self, processor: Any) -> SplitSpec | None:
        edge_px = self.configure(processor, SplitSpec())
        return SplitSpec(longest_edge_px=max(self.floor_px, edge_px // 2)) if edge_px > self.floor_px else None

    def describe(self, processor: Any) -> dict:
        return {"longest_edge_px": self.configure(processor, SplitSpec()), "split": False}


@dataclass(frozen=True)
class PixelBudget:
    """Qwen-style processors (Qwen2.5-VL, Qwen3-VL, PaddleOCR-VL, GLM-OCR) that keep an image's aspect and scale it
    into a budget of pixels (`size.longest_edge` is that budget, `min_pixels`/`max_pixels` in older configs). The
    knob: `--longest-edge E` makes the budget E x E, so a page whose longest edge is E is read as rendered; the input
    edge is the square root of the budget. `default_edge_px`: the edge the card reads pages at (olmOCR-2 renders
    them at 1288 px), used when `--longest-edge` is not given; None keeps the checkpoint's budget. Ladder: quarter
    the budget (halve the edge) down to `floor_px`.

    `per_frame`: the budget bounds all `temporal_patch_size` frames of an image together (Glm46V's image processor,
    GLM-OCR's: a still image is that many identical frames), so one page gets the budget divided by that; the knob
    scales the budget up by it, so `--longest-edge E` still reads a page of longest edge E as rendered."""

    floor_px: int = 448
    default_edge_px: int | None = None
    per_frame: bool = False

    def configure(self, processor: Any, split: SplitSpec) -> int:
        image_processor = processor.image_processor
        edge_px = split.longest_edge_px or self.default_edge_px
        if edge_px:
            self._set_budget(image_processor, edge_px ** 2 * self._frames(image_processor))
        return self._edge_px(processor)

    def lower(self, processor: Any) -> SplitSpec | None:
        edge_px = self._edge_px(processor)
        return SplitSpec(longest_edge_px=max(self.floor_px, edge_px // 2)) if edge_px > self.floor_px else None

    def describe(self, processor: Any) -> dict:
        return {"longest_edge_px": self._edge_px(processor), "split": False}

    def _edge_px(self, processor: Any) -> int:
        image_processor = processor.image_processor
        budget = self._budget(image_processor)
        return math.isqrt(budget // self._frames(image_processor)) if budget else UNSTATED_EDGE_PX

    def _frames(self, image_processor: Any) -> int:
        return int(getattr(image_processor, "temporal_patch_size", None) or 1) if self.per_frame else 1

    @staticmethod
    def _budget(image_processor: Any) -> int | None:
        size = getattr(image_processor, "size", None) or {}
        budget = size.get("longest_edge") or size.get("max_pixels") or getattr(image_processor, "max_pixels", None)
        return int(budget) if budget else None

    @staticmethod
    def _set_budget(image_processor: Any, pixels: int) -> None:
        size = dict(getattr(image_processor, "size", None) or {})
        key = "max_pixels" if "max_pixels" in size else "longest_edge"
        shortest_key = "min_pixels" if key == "max_pixels" else "shortest_edge"
        size[key] = pixels
        if shortest_key in size:
            size[shortest_key] = min(int(size[shortest_key]), pixels)
        image_processor.size = size
        if hasattr(image_processor, "max_pixels"):
            image_processor.max_pixels = pixels
