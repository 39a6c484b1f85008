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


@dataclass(frozen=True)
class TileGrid:
    """Processors that cut a page into square tiles on the grid closest to its aspect ratio, beside a global view
    (DeepSeek-OCR-2: 768 px tiles and a 1024 px view; Granite-Docling v2: 512 px tiles and a thumbnail):
    `crop_to_patches` turns the tiles on, `max_patches` bounds their number.

    The knob: `--longest-edge E` allows n(n-1) tiles, n = E // tile, so a page-shaped grid is at most n tiles on
    its long side (DeepSeek: 2304 px -> its card's 6 tiles; Granite: 3072 px -> 30, about its card's 32); below
    two tiles per side, none. `--no-split` reads the global view alone. The input edge is n tiles (the global
    view's edge without tiles). Ladder: one tile fewer on the long side, down to two, then no tiles.

    Where the settings go: a processor whose per-call defaults (`processor.images_kwargs`) name them reads them
    from there, over the image processor's own attributes (transformers 5), so they are written there (on this
    instance); otherwise on the image processor. `tile_sizes_unsplit_view`: DeepSeek-OCR-2's image processor shows
    the global view at the tile's size when tiles are off (768 px), while its processor counts the view's tokens
    from `size` (1024 px): "Image features and image tokens do not match, tokens: 257, features: 145". So without
    tiles the call's tile size is the view's: the global view stays the 1024 px one it is beside tiles (257 tokens),
    and rows read with and without tiles share one view size (a training batch that replays unsplit pages).
    """

    tile_size_key: str = "size"  # the image processor's attribute holding the tile: an int or {"height": ...}
    tile_sizes_unsplit_view: bool = False

    def configure(self, processor: Any, split: SplitSpec) -> int:
        crop = self._get(processor, "crop_to_patches")
        max_patches = int(self._get(processor, "max_patches"))
        if split.split is not None:
            crop = split.split
        if split.longest_edge_px:
            tiles_per_side = split.longest_edge_px // self.tile_px(processor)
            crop = crop and tiles_per_side >= 2
            max_patches = tiles_per_side * (tiles_per_side - 1) if crop else max_patches
        self._set(processor, crop_to_patches=bool(crop), max_patches=max_patches)
        if self.tile_sizes_unsplit_view:
            kwargs = dict(getattr(processor, "images_kwargs", None) or {})
            kwargs.pop(self.tile_size_key, None)
            if not crop:
                kwargs[self.tile_size_key] = self._view_px(processor)
            processor.images_kwargs = kwargs
        return self._edge_px(processor)

    def lower(self, processor: Any) -> SplitSpec | None:
        if not self._get(processor, "crop_to_patches"):
            return None
        tiles_per_side = self.tiles_per_side(int(self._get(processor, "max_patches")))
        if tiles_per_side > 2:
            return SplitSpec(split=True, longest_edge_px=(tiles_per_side - 1) * self.tile_px(processor))
        return SplitSpec(split=False)

    def describe(self, processor: Any) -> dict:
        return {"longest_edge_px": self._edge_px(processor), "split": bool(self._get(processor, "crop_to_patches"))}

    def tile_px(self, processor: Any) -> int:
        return _side_px(getattr(processor.image_processor, self.tile_size_key))

    @staticmethod
    def tiles_per_side(max_patches: int) -> int:
        """The most tiles on a page's long side that `max_patches` allows: the largest n with n(n-1) <= it."""
        n = 1
        while (n + 1) * n <= max_patches:
            n += 1
        return n

    def _edge_px(self, processor: Any) -> int:
        if not self._get(processor, "crop_to_patches"):
            return self._view_px(processor)
        tiles_px = max(2, self.tiles_per_side(int(self._get(processor, "max_patches")))) * self.tile_px(processor)
        return max(tiles_px, self._view_px(processor))

    @staticmethod
    def _view_px(processor: Any) -> int:
        return _side_px(processor.image_processor.size)

    @staticmethod
    def _get(processor: Any, name: str) -> Any:
        kwargs = getattr(processor, "images_kwargs", None) or {}
        return kwargs[name] if name in kwargs else getattr(processor.image_processor, name)

    @staticmethod
    def _set(processor: Any, **values: Any) -> None:
        kwargs = getattr(processor, "images_kwargs", None) or {}
        if "crop_to_patches" in kwargs:
            processor.images_kwargs = {**kwargs, **values}
        else:
            for name, value in values.items():
                setattr(processor.image_processor, name, value)


def _side_px(size: Any) -> int:
    """A square's side from a size given as pixels, a {"height": ...} dict or transformers' SizeDict."""
    return int(size if isinstance(size, (int, float)) else size["height"])
