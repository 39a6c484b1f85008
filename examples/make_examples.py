"""Write the example inputs: a printed letter (PDF + PNG), a 2-page PDF, a long receipt, a handwriting-style note.

    python examples/make_examples.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DPI = 150


def _page(lines: list[str], size_in=(8.27, 11.69), point_size=11, margin_in=0.8) -> Image.Image:
    width, height = round(size_in[0] * DPI), round(size_in[1] * DPI)
    page = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(page), ImageFont.load_default(size=round(point_size * DPI / 72))
    top = round(margin_in * DPI)
    for line in lines:
        draw.text((round(margin_in * DPI), top), line, fill="black", font=font)
        top += round(point_size * 1.5 * DPI / 72)
    return page


LETTER = ["ACME Supplies Ltd.", "12 Harbour Road, Bristol", "", "Invoice number: INV-2024-0117",
          "Date: 31 January 2024", "", "Item                      Qty    Price", "Printer paper A4           10    45.00",
          "Toner cartridge             2    88.50", "", "Total due: 133.50 GBP", "", "Thank you for your order."]
RECEIPT = ["CORNER CAFE", "2024-03-05 08:14"] + [f"Espresso #{n:02d}   2.40" for n in range(1, 60)] + ["TOTAL  141.60"]
NOTE = ["Dear Sam,", "the keys are under the blue pot.", "Back on Tuesday - call me!", "   Alex"]


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    letter = _page(LETTER)
    letter.save(out_dir / "letter.png")
    letter.save(out_dir / "letter.pdf", resolution=DPI)
    second = _page(["Page 2", "Terms: payment within 30 days.", "Bank: 12-34-56 / 12345678"])
    letter.save(out_dir / "two-pages.pdf", save_all=True, append_images=[second], resolution=DPI)
    _page(RECEIPT, size_in=(3.15, 16.0), point_size=9, margin_in=0.2).save(out_dir / "receipt.png")
    _page(NOTE, size_in=(5.8, 4.1), point_size=16).save(out_dir / "note.jpg", quality=90)
    print("\n".join(str(p) for p in sorted(out_dir.iterdir())))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/inputs"))
