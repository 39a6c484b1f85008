"""`python -m tools.synthetic OUT_DIR`: write the synthetic dataset (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools.synthetic.fonts import FONT_DIRS, FontsMissing, require_fonts
from tools.synthetic.text import MIN_MAX_CHARS
from tools.synthetic.write import Counts, Scale, write_dataset


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.synthetic",
                                     description="Write synthetic lines, pages and receipts as vlmcli JSONL.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--glyphs", type=int, default=0,
                        help="training images of one printed character on a 64 px canvas (the 2-minute check)")
    parser.add_argument("--lines", type=int, default=2000, help="printed training lines")
    parser.add_argument("--hand", type=int, default=None, help="handwriting training lines (default: --lines / 2)")
    parser.add_argument("--pages", type=int, default=200, help="training pages")
    parser.add_argument("--receipts", type=int, default=200, help="training receipts (3 questions each)")
    parser.add_argument("--heldout", type=int, default=100, help="items in each held-out file")
    parser.add_argument("--max-chars", type=int, default=24, help="longest line, in characters")
    parser.add_argument("--canvas-px", type=int, nargs=2, default=(1024, 1024), metavar=("W", "H"),
                        help="page size; text is 1/85 to 1/56 of the short side")
    parser.add_argument("--page-text-px", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="font size range on pages (default: the fraction of the canvas above)")
    parser.add_argument("--line-text-px", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="font size range of lines (default: 18-28 printed, 22-32 handwriting)")
    parser.add_argument("--line-canvas-px", type=int, nargs=2, default=None, metavar=("W", "H"),
                        help="paste each line on a canvas of this size (default: a tight crop)")
    parser.add_argument("--receipt-canvas-px", type=int, nargs=2, default=None, metavar=("W", "H"),
                        help="paste each receipt on a canvas of this size (default: a tight crop)")
    parser.add_argument("--random-chars-share", type=float, default=0.0, metavar="FRACTION",
                        help="share of training lines made of random characters (default 0)")
    parser.add_argument("--font-dir", type=Path, action="append", default=None,
                        help=f"where to look for fonts (repeatable; default: {', '.join(map(str, FONT_DIRS))})")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error("--seed must be 0 or more")
    if args.max_chars < MIN_MAX_CHARS:
        parser.error(f"--max-chars must be at least {MIN_MAX_CHARS}")
    if min(args.canvas_px) < 256:
        parser.error("--canvas-px must be at least 256 per side: page text is tiny by design")
    return args


def _pair(values: list[int] | None) -> tuple[int, int] | None:
    return tuple(values) if values else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        fonts = require_fonts(args.font_dir or FONT_DIRS)
    except FontsMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 6  # vlmcli's exit code for a missing dependency
    counts = Counts(lines=args.lines, hand=args.lines // 2 if args.hand is None else args.hand,
                    pages=args.pages, receipts=args.receipts, heldout=args.heldout, glyphs=args.glyphs)
    started = time.perf_counter()
    scale = Scale(canvas_px=tuple(args.canvas_px), page_text_px=_pair(args.page_text_px),
                  line_text_px=_pair(args.line_text_px), line_canvas_px=_pair(args.line_canvas_px),
                  receipt_canvas_px=_pair(args.receipt_canvas_px), random_chars_share=args.random_chars_share)
    written = write_dataset(args.out_dir, fonts, counts, args.seed, args.max_chars, scale=scale)
    for name, count in written.items():
        print(f"{count:7d}  {args.out_dir / name}")
    print(f"train fonts: {', '.join(f.name for f in fonts.train)}")
    print(f"held-out fonts: {', '.join(f.name for f in fonts.heldout)}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
