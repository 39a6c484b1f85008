"""Write the synthetic dataset: PNG images and the JSONL files `vlmcli finetune` and `vlmcli eval` read."""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tools.synthetic.fonts import Font, FontSplit
from tools.synthetic.render import (
    Look,
    on_canvas,
    page_text_size_px,
    render_line,
    render_page,
    render_receipt,
)
from tools.synthetic.text import fresh_text, random_chars, random_receipt

# Handwriting fonts draw smaller letters at the same nominal size, so they get a larger one.
LINE_SIZE_PX = {"printed": (18, 28), "hand": (22, 32)}
# Single characters in one typeface, centred, black on white: what a model with random weights
# learns to read in minutes on a CPU. Measured with the tiny model (300 steps of 16): such glyphs
# reach loss 0.18; rotated by up to 2 degrees 0.8; with the lines' paper/ink levels, noise and blur,
# or in six typefaces at 28-40 px near the left edge, it stays at the label prior (0.85-0.9).
GLYPHS = string.ascii_uppercase + string.digits
GLYPH_SIZE_PX, GLYPH_CANVAS_PX = (38, 40), (64, 64)
PAGE_HAND_SHARE = 0.25
MAX_PAGE_LINES = 3


@dataclass(frozen=True)
class Counts:
    lines: int
    hand: int
    pages: int
    receipts: int
    heldout: int  # items (receipts for qa_*) in each held-out file
    glyphs: int = 0  # training images of one printed character; held-out ones only if > 0


@dataclass(frozen=True)
class Job:
    name: str  # also the image folder and the JSONL file's stem
    kind: str  # "line" | "page" | "receipt"
    style: str  # "printed" | "hand" | "mixed"
    heldout_fonts: bool
    count: int


# Train sets come first: held-out sets then reject every string the train sets used.
def jobs(counts: Counts, fonts: FontSplit) -> list[Job]:
    planned = [Job("glyphs_train", "glyph", "printed", False, counts.glyphs),
               Job("lines_train", "line", "printed", False, counts.lines),
               Job("hand_train", "line", "hand", False, counts.hand),
               Job("pages_train", "page", "mixed", False, counts.pages),
               Job("qa_train", "receipt", "printed", False, counts.receipts),
               Job("glyphs_heldout", "glyph", "printed", False, counts.heldout if counts.glyphs else 0),
               Job("lines_heldout", "line", "printed", False, counts.heldout),
               Job("lines_heldout_newfont", "line", "printed", True, counts.heldout),
               Job("hand_heldout", "line", "hand", False, counts.heldout),
               Job("hand_heldout_newfont", "line", "hand", True, counts.heldout),
               Job("pages_heldout", "page", "mixed", False, counts.heldout),
               Job("qa_heldout", "receipt", "printed", False, counts.heldout)]
    return [job for job in planned if job.count > 0 and (not job.heldout_fonts or fonts.of(job.style, True))]


def _stream(seed: int, name: str) -> np.random.Generator:
    # One stream per file, keyed by its name: the content of one file does not shift with the others' counts.
    return np.random.default_rng([seed, *name.encode()])


def _font(rng: np.random.Generator, fonts: FontSplit, style: str, heldout: bool) -> Font:
    if style == "mixed":
        style = "hand" if rng.random() < PAGE_HAND_SHARE else "printed"
    choices = fonts.of(style, heldout)
    # by package first, so a package with several typefaces does not dominate
    packages = sorted({font.package for font in choices})
    package = packages[int(rng.integers(len(packages)))]
    in_package = [font for font in choices if font.package == package]
    return in_package[int(rng.integers(len(in_package)))]


@dataclass(frozen=True)
class Scale:
    """Pixel sizes, for models whose sub-images are smaller than SmolVLM's 512 px (None: the defaults)."""

    canvas_px: tuple[int, int] = (1024, 1024)  # pages
    page_text_px: tuple[int, int] | None = None  # font size range on pages; default: a fraction of the canvas
    line_text_px: tuple[int, int] | None = None  # font size range of lines; default: LINE_SIZE_PX
    line_canvas_px: tuple[int, int] | None = None  # lines pasted on a fixed canvas (no rescaling by the processor)
    receipt_canvas_px: tuple[int, int] | None = None  # receipts likewise
    # Share of training lines that are random characters. A model that starts from random
    # weights first learns to guess words without looking; random strings leave it nothing
    # to guess, so the loss only falls once it reads the image.
    random_chars_share: float = 0.0


@dataclass(frozen=True)
class Context:
    fonts: FontSplit
    seen: set[str]
    max_chars: int
    scale: Scale


Item = tuple[Image.Image, list[dict]]  # an image and its records without the "image" key


def _line(job: Job, rng: np.random.Generator, context: Context) -> Item:
    font = _font(rng, context.fonts, job.style, job.heldout_fonts)
    chars = job.name.endswith("_train") and rng.random() < context.scale.random_chars_share
    make = (lambda r: random_chars(r, context.max_chars)) if chars else None
    text = fresh_text(rng, context.seen, context.max_chars, make=make, upper=font.caps_only)
    low_px, high_px = context.scale.line_text_px or LINE_SIZE_PX[job.style]
    image = render_line(text, font.path, int(rng.integers(low_px, high_px + 1)), rng)
    if context.scale.line_canvas_px:
        image = on_canvas(image, context.scale.line_canvas_px, rng, anywhere=False)
    return image, [{"text": text, "font": font.name}]


def _glyph(job: Job, rng: np.random.Generator, context: Context) -> Item:
    """One character centred on a 64 px canvas, in the first printed typeface; held-out: new renderings."""
    font = context.fonts.of(job.style, False)[0]
    char = GLYPHS[int(rng.integers(len(GLYPHS)))]
    look = Look(paper=255, ink=0, rotation_deg=0.0, noise_sigma=0.0, blur_radius_px=0.0)
    image = render_line(char, font.path, int(rng.integers(GLYPH_SIZE_PX[0], GLYPH_SIZE_PX[1] + 1)), rng, look)
    return on_canvas(image, GLYPH_CANVAS_PX, rng, centred=True), [{"text": char, "font": font.name}]


def _page(job: Job, rng: np.random.Generator, context: Context) -> Item:
    font = _font(rng, context.fonts, job.style, job.heldout_fonts)
    count = int(rng.integers(1, MAX_PAGE_LINES + 1))
    lines = [fresh_text(rng, context.seen, context.max_chars, upper=font.caps_only) for _ in range(count)]
    scale = context.scale
    size_px = (int(rng.integers(scale.page_text_px[0], scale.page_text_px[1] + 1)) if scale.page_text_px
               else page_text_size_px(rng, scale.canvas_px))
    image = render_page(lines, font.path, size_px, rng, scale.canvas_px)
    return image, [{"text": "\n".join(lines), "font": font.name}]


def _receipt(job: Job, rng: np.random.Generator, context: Context) -> Item:
    font = _font(rng, context.fonts, job.style, job.heldout_fonts)
    receipt = random_receipt(rng, context.seen)
    image = render_receipt(receipt, font.path, rng)
    if context.scale.receipt_canvas_px:
        image = on_canvas(image, context.scale.receipt_canvas_px, rng)
    return image, [{"question": question, "answer": answer, "font": font.name} for question, answer in receipt.qa]


MAKERS: dict[str, Callable[[Job, np.random.Generator, Context], Item]] = {
    "glyph": _glyph,
    "line": _line, "page": _page, "receipt": _receipt}


def _records(job: Job, out_dir: Path, seed: int, context: Context) -> Iterator[dict]:
    rng = _stream(seed, job.name)
    (out_dir / "images" / job.name).mkdir(parents=True, exist_ok=True)
    for index in range(job.count):
        image, records = MAKERS[job.kind](job, rng, context)
        relative = f"images/{job.name}/{index:05d}.png"
        image.save(out_dir / relative, compress_level=1)  # fast; level 6 saves little on noisy scans
        for record in records:
            yield {"image": relative, **record}


def write_dataset(out_dir: Path, fonts: FontSplit, counts: Counts, seed: int = 0, max_chars: int = 24,
                  canvas_px: tuple[int, int] = (1024, 1024), scale: Scale | None = None) -> dict[str, int]:
    """Write every job's images and JSONL file plus manifest.json; return {file name: records}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scale = scale or Scale(canvas_px=canvas_px)
    canvas_px = scale.canvas_px
    context = Context(fonts, set(), max_chars, scale)
    written = {}
    for job in jobs(counts, fonts):
        lines = [json.dumps(record, ensure_ascii=False) + "\n" for record in _records(job, out_dir, seed, context)]
        (out_dir / f"{job.name}.jsonl").write_text("".join(lines), encoding="utf-8")
        written[f"{job.name}.jsonl"] = len(lines)
    manifest = {"seed": seed, "max_chars": max_chars, "canvas_px": list(canvas_px), "scale": asdict(scale),
                "counts": asdict(counts),
                "train_fonts": [[f.package, f.name] for f in fonts.train],
                "heldout_fonts": [[f.package, f.name] for f in fonts.heldout], "files": written}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return written
