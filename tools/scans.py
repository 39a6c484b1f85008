"""Scanned pages made in code whose words and boxes are known: text drawn into an image in a real font
(DejaVu Sans, fonts-dejavu-core), word by word, each word's box recorded as a text layer gives it (the font's
ascent to descent, so the boxes of one line are equally high). For the first-pass tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
A4_IN = (8.27, 11.69)


@dataclass(frozen=True)
class DrawnWord:
    text: str
    box_px: tuple[int, int, int, int]  # left, top, right, bottom in the image's pixels
    line: int


def scan(lines: list[str], dpi: int = 150, font_pt: float = 12, size_in: tuple[float, float] = A4_IN,
         margin_in: float = 1.0) -> tuple[Image.Image, list[DrawnWord]]:
    """A white page of `size_in` inches at `dpi`, `lines` drawn from the top-left margin down."""
    page = Image.new("RGB", (round(size_in[0] * dpi), round(size_in[1] * dpi)), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(FONT, round(font_pt * dpi / 72))
    ascent, descent = font.getmetrics()
    space = font.getlength(" ")
    words, y = [], round(margin_in * dpi)
    for line_number, line in enumerate(lines):
        x = float(margin_in * dpi)
        for word in line.split():
            draw.text((x, y), word, font=font, fill="black")
            width = font.getlength(word)
            words.append(DrawnWord(word, (round(x), y, round(x + width), y + ascent + descent), line_number))
            x += width + space
        y += round((ascent + descent) * 1.4)
    return page, words


def scanned_pdf(path: Path, pages: list[list[str]], dpi: int = 150, font_pt: float = 12) -> tuple[Path, list]:
    """An image-only PDF of `pages` (each a list of lines) at `dpi`, and each page's drawn words."""
    drawn = [scan(lines, dpi, font_pt) for lines in pages]
    images = [image for image, _ in drawn]
    images[0].save(path, save_all=True, append_images=images[1:], resolution=dpi)
    return path, [words for _, words in drawn]
