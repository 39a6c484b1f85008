"""Benchmark pages, generated: a dense and a sparse A4 text page, a photo-like image, a 4-page PDF (Pillow only)."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

DPI = 150
WORDS = "invoice total amount due date reference payment account balance order item quantity".split()


def text_page(path: Path, rows: int | None = None, seed: int = 0, dpi: int = DPI) -> Path:
    """An A4 page at `dpi` with 11-pt lines of words and numbers (all rows, or the first `rows`)."""
    width, height = round(8.27 * dpi), round(11.69 * dpi)
    page = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(page), ImageFont.load_default(size=round(11 * dpi / 72))
    tops = list(range(round(dpi * 0.8), height - round(dpi * 0.8), round(16 * dpi / 72)))
    for row, top in enumerate(tops[:rows] if rows else tops):
        line = " ".join(WORDS[(row * 7 + k + seed) % len(WORDS)] for k in range(9)) + f" {row * 37 % 1000:>4}.{row % 100:02d}"
        draw.text((round(dpi * 0.8), top), line, fill="black", font=font)
    page.save(path)
    return path


def photo(path: Path, seed: int = 0) -> Path:
    """A 1600x1200 photo-like image: smooth colour fields with blurred shapes and noise."""
    rng = random.Random(seed)
    image = Image.new("RGB", (1600, 1200), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y, r = rng.randrange(1600), rng.randrange(1200), rng.randrange(20, 300)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    image = image.filter(ImageFilter.GaussianBlur(6))
    noise = Image.effect_noise(image.size, 24).convert("RGB")
    Image.blend(image, noise, 0.15).save(path, quality=90)
    return path


def pdf(path: Path, pages: int = 4) -> Path:
    """A PDF of `pages` dense A4 text pages at 150 dpi."""
    images = [Image.open(text_page(path.with_suffix(f".{n}.png"), seed=n)).convert("RGB") for n in range(pages)]
    images[0].save(path, save_all=True, append_images=images[1:], resolution=DPI)
    return path


def make_all(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {"dense": text_page(folder / "dense.png"), "sparse": text_page(folder / "sparse.png", rows=6),
            "photo": photo(folder / "photo.jpg"), "pdf4": pdf(folder / "four-pages.pdf"),
            "pdf1": pdf(folder / "one-page.pdf", pages=1)}
