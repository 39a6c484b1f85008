"""Render synthetic text lines, pages and receipts as grayscale scans (Pillow + numpy).

Each rendering draws one `Look` (paper and ink grays, rotation, noise, blur)
within fixed bounds, so that a scan is imperfect but always legible at its own
resolution. Pages are the exception by design: their text is legible only when
the page is split into tiles, never when the whole page is shrunk to the model's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tools.synthetic.text import Receipt

PAPER_LEVELS = (225, 255)  # background gray
INK_LEVELS = (0, 70)
MAX_ROTATION_DEG = 2.0
MAX_NOISE_SIGMA = 8.0
MAX_BLUR_RADIUS_PX = 0.8
BLUR_PROBABILITY = 0.3
LINE_SPACING = 1.35  # line pitch as a multiple of the font size
# Page text size as a fraction of the canvas's short side: at 1024 px that is 12-18 px,
# legible in a 1/4 or 1/8 tile at full resolution, 3-4.5 px (illegible) once the whole page is shrunk to 256.
PAGE_TEXT_FRACTION = (1 / 85, 1 / 56)
PAGE_MAX_ROTATION_DEG = 1.0


@dataclass(frozen=True)
class Look:
    paper: int
    ink: int
    rotation_deg: float
    noise_sigma: float
    blur_radius_px: float  # 0: no blur


def random_look(rng: np.random.Generator, max_rotation_deg: float = MAX_ROTATION_DEG) -> Look:
    blur_radius_px = float(rng.uniform(0.3, MAX_BLUR_RADIUS_PX)) if rng.random() < BLUR_PROBABILITY else 0.0
    return Look(paper=int(rng.integers(PAPER_LEVELS[0], PAPER_LEVELS[1] + 1)),
                ink=int(rng.integers(INK_LEVELS[0], INK_LEVELS[1] + 1)),
                rotation_deg=float(rng.uniform(-max_rotation_deg, max_rotation_deg)),
                noise_sigma=float(rng.uniform(0, MAX_NOISE_SIGMA)), blur_radius_px=blur_radius_px)


@lru_cache(maxsize=512)
def load_font(path: str, size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size_px)


def draw_rows(rows: list[tuple[str, str]], font: ImageFont.FreeTypeFont, look: Look,
              pad_px: int, width_px: int | None = None) -> Image.Image:
    """Rows of (left, right) text on a tight canvas; right text is right-aligned, '-' draws a rule.

    Rows are measured by their ink, not the font's line metrics: some handwriting
    fonts declare an ascent and descent twice the height of their letters.
    """
    texts = [text for row in rows for text in row if text]
    boxes = [font.getbbox(text) for text in ("Hg", *texts)]
    top_px, bottom_px = min(box[1] for box in boxes), max(box[3] for box in boxes)
    row_px = bottom_px - top_px
    pitch_px = max(round(font.size * LINE_SPACING), row_px + 2)
    widths = [_ink_width(font, left) + (_ink_width(font, right) + font.size if right else 0) for left, right in rows]
    width_px = width_px or int(max(widths)) + 2 * pad_px
    image = Image.new("L", (width_px, pitch_px * (len(rows) - 1) + row_px + 2 * pad_px), look.paper)
    draw = ImageDraw.Draw(image)
    for number, (left, right) in enumerate(rows):
        y_px = pad_px + number * pitch_px - top_px
        if left == "-" and not right:
            middle_px = y_px + top_px + row_px // 2
            draw.line((pad_px, middle_px, width_px - pad_px, middle_px), fill=look.ink, width=1)
            continue
        draw.text((pad_px, y_px), left, font=font, fill=look.ink)
        if right:
            draw.text((width_px - pad_px, y_px), right, font=font, fill=look.ink, anchor="ra")
    return image


def _ink_width(font: ImageFont.FreeTypeFont, text: str) -> float:
    return max(font.getlength(text), font.getbbox(text)[2])  # italics and scripts overhang their advance


def degrade(image: Image.Image, look: Look, rng: np.random.Generator) -> Image.Image:
    """Rotate (growing the canvas so nothing is cut), blur, then add gaussian sensor noise."""
    if look.rotation_deg:
        image = image.rotate(look.rotation_deg, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=look.paper)
    if look.blur_radius_px:
        image = image.filter(ImageFilter.GaussianBlur(look.blur_radius_px))
    if look.noise_sigma:
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, look.noise_sigma, (image.height, image.width))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    return image


def render_line(text: str, font_path: Path | str, size_px: int, rng: np.random.Generator,
                look: Look | None = None) -> Image.Image:
    """One line of text, slightly rotated and noisy, on a canvas a few pixels larger than the text."""
    look = look or random_look(rng)
    pad_px = int(rng.integers(2, 7))
    return degrade(draw_rows([(text, "")], load_font(str(font_path), size_px), look, pad_px), look, rng)


def on_canvas(image: Image.Image, canvas_px: tuple[int, int], rng: np.random.Generator,
              anywhere: bool = True, centred: bool = False) -> Image.Image:
    """Paste an item on a fixed-size canvas of its own paper gray, shrinking it only if it must.

    `anywhere`: at a random place; otherwise near the left edge and centred vertically
    (a line as a line detector would crop it), give or take a few pixels; `centred`:
    in the middle, give or take 2 pixels.
    """
    if image.width > canvas_px[0] or image.height > canvas_px[1]:
        image = image.copy()
        image.thumbnail(canvas_px, Image.Resampling.LANCZOS)
    paper = int(np.median(np.asarray(image)[[0, -1]]))  # the top and bottom rows are paper
    canvas = Image.new("L", canvas_px, paper)
    free_x, free_y = canvas_px[0] - image.width, canvas_px[1] - image.height
    if centred:
        canvas.paste(image, (free_x // 2 + int(rng.integers(-2, 3)) if free_x >= 4 else free_x // 2,
                             free_y // 2 + int(rng.integers(-2, 3)) if free_y >= 4 else free_y // 2))
    elif anywhere:
        canvas.paste(image, (int(rng.integers(0, free_x + 1)), int(rng.integers(0, free_y + 1))))
    else:
        jitter_px = min(4, free_y // 2)
        canvas.paste(image, (int(rng.integers(0, min(free_x, 12) + 1)),
                             free_y // 2 + int(rng.integers(-jitter_px, jitter_px + 1))))
    return canvas


def page_text_size_px(rng: np.random.Generator, canvas_px: tuple[int, int]) -> int:
    low, high = (min(canvas_px) * fraction for fraction in PAGE_TEXT_FRACTION)
    return int(rng.integers(round(low), round(high) + 1))


def render_page(lines: list[str], font_path: Path | str, size_px: int, rng: np.random.Generator,
                canvas_px: tuple[int, int] = (1024, 1024)) -> Image.Image:
    """A large blank page with a small block of `lines` at a random place, in reading order."""
    look = random_look(rng, PAGE_MAX_ROTATION_DEG)
    block = degrade(draw_rows([(line, "") for line in lines], load_font(str(font_path), size_px), look, 4),
                    look, rng)
    if block.width > canvas_px[0] or block.height > canvas_px[1]:
        raise ValueError(f"text block {block.size} does not fit the {canvas_px} canvas; use shorter lines")
    page = Image.new("L", canvas_px, look.paper)
    page.paste(block, (int(rng.integers(0, canvas_px[0] - block.width + 1)),
                       int(rng.integers(0, canvas_px[1] - block.height + 1))))
    return page


def render_receipt(receipt: Receipt, font_path: Path | str, rng: np.random.Generator) -> Image.Image:
    """A small receipt: store, invoice number, date, items with amounts, a rule, the total."""
    look = random_look(rng)
    size_px = int(rng.integers(15, 23))
    font = load_font(str(font_path), size_px)
    pad_px = int(rng.integers(8, 20))
    widest_px = max(font.getlength(left) + font.getlength(right) for left, right in receipt.rows)
    width_px = int(widest_px + size_px * rng.uniform(2, 6)) + 2 * pad_px
    return degrade(draw_rows(list(receipt.rows), font, look, pad_px, width_px), look, rng)
