"""Page geometry: the PDF render resolution and vlmcli's own bands (pure; Pillow only).

Two words for two kinds of cut. The processor cuts each image it is given into
*sub-images* (Idefics3/SmolVLM: an N×M grid of `max_image_size` squares plus a
global image; Idefics2: 4 crops plus the original). A page larger than the
processor's input would first be shrunk as a whole, and its small text lost, so
vlmcli cuts such pages into overlapping horizontal *bands*, top to bottom, each
no larger than the model's input. Bands are transcribed in order and merged
(pipeline/bands.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

A4_LONG_EDGE_IN = 11.69
# A page up to this much over the model's input is shrunk rather than banded:
# a second band would double the cost for a small gain in legibility.
BAND_TOLERANCE = 1.25
# Processors divide tiny images into crops (Idefics2: quadrants) and fail on 1-px sides.
MIN_SIDE_PX = 16


@dataclass(frozen=True)
class BandPlan:
    """How to cut a page: resize to `size_px` (w, h), then crop each (top, bottom) row range."""

    size_px: tuple[int, int]
    rows_px: tuple[tuple[int, int], ...]


def pdf_render_dpi(width_in: float, height_in: float, max_edge_px: int, bands: bool,
                   max_dpi: float | None = None) -> float:
    """DPI at which to rasterize a page so that it needs no resizing afterwards, at most `max_dpi`.

    Without bands the longest edge matches the model's input. With bands, a page
    longer than A4 (a receipt, a poster) is rendered at the resolution an A4 page
    would get, capped so that its width still fits the model's input. `max_dpi`
    bounds both: a processor whose input edge is the square root of a large pixel
    budget (4096 px) would otherwise get an A4 page at 350 dpi, and its tokens.
    """
    fit_dpi = max_edge_px / max(width_in, height_in)
    if bands:
        document_dpi = max_edge_px / A4_LONG_EDGE_IN
        width_cap_dpi = max_edge_px / width_in
        fit_dpi = max(fit_dpi, min(document_dpi, width_cap_dpi))
    return min(fit_dpi, max_dpi) if max_dpi else fit_dpi


def plan_bands(width_px: int, height_px: int, max_edge_px: int, overlap: float) -> BandPlan:
    """Cover a width×height page with horizontal bands of at most max_edge_px per side.

    The page is first narrowed to max_edge_px if wider; bands overlap by
    `overlap` of their height so every text line lies whole inside some band.
    """
    if max(width_px, height_px) <= max_edge_px * BAND_TOLERANCE or height_px <= width_px:
        return BandPlan((width_px, height_px), ((0, height_px),))
    scale = min(1.0, max_edge_px / width_px)
    width, height = max(1, round(width_px * scale)), max(1, round(height_px * scale))
    band_px = max_edge_px
    step_px = max(1, int(band_px * (1.0 - overlap)))
    count = max(1, math.ceil((height - band_px) / step_px) + 1)
    step_px = math.ceil((height - band_px) / (count - 1)) if count > 1 else 0
    tops = [min(index * step_px, height - band_px) for index in range(count)]
    return BandPlan((width, height), tuple((top, top + band_px) for top in tops))


def pad_to_min_side(image: Image.Image, min_side_px: int = MIN_SIDE_PX) -> Image.Image:
    """Put a very small image on a white canvas at least min_side_px on each side (top-left)."""
    if min(image.size) >= min_side_px:
        return image
    canvas = Image.new("RGB", (max(image.width, min_side_px), max(image.height, min_side_px)), "white")
    canvas.paste(image, (0, 0))
    return canvas


def cut_bands(image: Image.Image, plan: BandPlan) -> list[Image.Image]:
    """Apply a plan: one image per band, top to bottom (the page itself if one band)."""
    if len(plan.rows_px) == 1 and plan.size_px == image.size:
        return [image]
    resized = image if plan.size_px == image.size else image.resize(plan.size_px, Image.Resampling.LANCZOS)
    return [resized.crop((0, top, resized.width, bottom)) for top, bottom in plan.rows_px]
