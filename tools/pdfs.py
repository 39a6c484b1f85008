"""PDFs made in code, for the tests and the retrieval benchmark: pages with a text layer (fpdf2), scanned pages
(images only, Pillow), both in one file, and printed page labels (/PageLabels, pikepdf)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SCAN_DPI = 100


def text_pdf(path: Path, pages: list[str], font_pt: int = 11) -> Path:
    """One A4 page per string, its lines typeset in Helvetica: a real text layer, as a word processor writes."""
    from fpdf import FPDF

    document = FPDF(format="A4")
    document.set_auto_page_break(False)
    for text in pages:
        document.add_page()
        document.set_font("Helvetica", size=font_pt)
        document.multi_cell(0, font_pt * 0.5, text)
    document.output(str(path))
    return path


def scanned_pdf(path: Path, pages: list[str], dpi: int = SCAN_DPI) -> Path:
    """One A4 page per string, drawn into an image: no text layer, as a scanner writes."""
    images = [_scan(text, dpi) for text in pages]
    images[0].save(path, save_all=True, append_images=images[1:], resolution=dpi)
    return path


def mixed_pdf(path: Path, pages: list[str], scanned: set[int]) -> Path:
    """`pages` with those whose 0-based index is in `scanned` as images, the others with a text layer."""
    import pikepdf

    parts = []
    for index, text in enumerate(pages):
        part = path.with_suffix(f".part{index}.pdf")
        (scanned_pdf if index in scanned else text_pdf)(part, [text])
        parts.append(part)
    with pikepdf.new() as document:
        for part in parts:
            with pikepdf.open(part) as source:
                document.pages.extend(source.pages)
        document.save(path)
    for part in parts:
        part.unlink()
    return path


def label_pages(path: Path, ranges: list[tuple[int, str, int]]) -> Path:
    """Give the PDF printed page labels: (first 0-based page, style, first number) per range; style is one of
    PDF's: D (1, 2), r (i, ii), R, a, A."""
    import pikepdf

    with pikepdf.open(path, allow_overwriting_input=True) as document:
        numbers = []
        for first, style, start in ranges:
            numbers += [first, pikepdf.Dictionary(S=pikepdf.Name("/" + style), St=start)]
        document.Root.PageLabels = pikepdf.Dictionary(Nums=pikepdf.Array(numbers))
        document.save(path)
    return path


def _scan(text: str, dpi: int) -> Image.Image:
    width, height = round(8.27 * dpi), round(11.69 * dpi)
    page = Image.new("RGB", (width, height), "white")
    font = ImageFont.load_default(size=round(12 * dpi / 72))
    ImageDraw.Draw(page).multiline_text((dpi, dpi), text, fill="black", font=font, spacing=round(6 * dpi / 72))
    return page
