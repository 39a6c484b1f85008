"""A searchable PDF: each page's image with an invisible text layer over it (fpdf2), as OCRmyPDF makes them.

The text is drawn in render mode 3 (invisible), one text object per line, each
line stretched horizontally to the width of its box, in a glyphless font built
for the document's characters (fontTools): viewers show the image, `pdftotext`,
search and copy read the text. Where the text goes: the boxes a model gives (a
Docling model's elements, DeepSeek-OCR-2's grounded blocks: each box's text
wrapped into as many lines as the box holds); a plain model's
words on the first pass's boxes (vlmcli/words/align.py), each word stretched to
its own box with a space drawn to the next, so highlights sit on the words;
without a first pass, its lines run from the top of the page down, each across
the page's width, evenly spaced: search and copy work, positions do not.
"""

from __future__ import annotations

import io
import math
import re
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from vlmcli.inputs.pages import PageGeometry
from vlmcli.words import PageWords

ASCENT, DESCENT = 0.8, 0.2  # of the font size: the glyphless font's metrics
LINE_SPACING = 1.2  # line height / font size, for guessing how many lines a box holds
CHAR_WIDTH = 0.5  # of the font size: every glyph's advance in the glyphless font
PLAIN_MARGIN = 0.05  # of the page, around a plain model's lines
PLAIN_LINES_PER_PAGE = 50  # a plain model's lines are this high unless there are more of them


@dataclass(frozen=True)
class TextLine:
    text: str
    box_pt: tuple[float, float, float, float]  # left, top, right, bottom; top-left origin, PDF points
    space_to_pt: float | None = None  # a space is drawn from the box's right edge to here (the next word's left)


@dataclass(frozen=True)
class SearchablePage:
    image: Image.Image
    geometry: PageGeometry
    lines: list[TextLine]


def boxed_lines(text: str, box_pt: tuple[float, float, float, float]) -> list[TextLine]:
    """`text` laid out in its box: its own lines, or, for one long line in a tall box, wrapped into as many
    lines as fit the box's shape at an even font size."""
    left, top, right, bottom = box_pt
    width, height = max(right - left, 1.0), max(bottom - top, 1.0)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1:
        count = max(1, round(math.sqrt(height * len(lines[0]) * CHAR_WIDTH / (width * LINE_SPACING))))
        lines = textwrap.wrap(lines[0], width=math.ceil(len(lines[0]) / count)) or lines
    step = height / max(len(lines), 1)
    return [TextLine(line, (left, top + index * step, right, top + (index + 1) * step))
            for index, line in enumerate(lines)]


def box_lines(boxes: list[tuple[str, tuple[float, float, float, float]]], geometry: PageGeometry) -> list[TextLine]:
    """Each box's text laid out in it (`boxed_lines`); boxes as (text, (left, top, right, bottom) fractions of the
    page's width and height, top-left origin)."""
    lines = []
    for text, (left, top, right, bottom) in boxes:
        box_pt = (left * geometry.width_pt, top * geometry.height_pt, right * geometry.width_pt,
                  bottom * geometry.height_pt)
        lines.extend(boxed_lines(text, box_pt))
    return lines


_MARKUP = re.compile(r"<[^<>]*>|^[ \t]*#+[ \t]+|\*\*|__", re.MULTILINE)
_LINE_BREAKS = re.compile(r"</(?:tr|p|li|h\d)>|<br\s*/?>", re.IGNORECASE)


def words_of(markdown: str) -> str:
    """The words of a Markdown block as the text layer holds them: HTML tags (a table's) and Markdown's heading
    and emphasis marks taken out; a table row, paragraph or line break stays a line."""
    return _MARKUP.sub(" ", _LINE_BREAKS.sub("\n", markdown))


def plain_lines(text: str, geometry: PageGeometry) -> list[TextLine]:
    """A plain model's page text, from the top of the page down, each line across the page's width."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    margin_x, margin_y = geometry.width_pt * PLAIN_MARGIN, geometry.height_pt * PLAIN_MARGIN
    step = (geometry.height_pt - 2 * margin_y) / max(len(lines), PLAIN_LINES_PER_PAGE)
    return [TextLine(line, (margin_x, margin_y + index * step, geometry.width_pt - margin_x,
                            margin_y + (index + 1) * step)) for index, line in enumerate(lines)]


def word_lines(page: PageWords) -> list[TextLine]:
    """One text object per word, in its box; each but the last of its line followed by a space up to the next."""
    placed = []
    for line in page.lines():
        for word, following in zip(line, [*line[1:], None]):
            placed.append(TextLine(word.text, word.bbox_pt, following.bbox_pt[0] if following else None))
    return placed


def write_pdf(pages: list[SearchablePage]) -> bytes:
    """The PDF of `pages`, in order: each page its image at its size in points, and its invisible text."""
    from fpdf import FPDF
    from fpdf.enums import TextMode

    pdf = FPDF(unit="pt")
    pdf.set_margin(0)
    pdf.set_auto_page_break(False)
    characters = {char for page in pages for line in page.lines for char in line.text}
    with tempfile.TemporaryDirectory(prefix="vlmcli-font-") as folder:
        font = Path(folder) / "glyphless.ttf"
        font.write_bytes(glyphless_font(characters))
        pdf.add_font("glyphless", fname=str(font))
        for page in pages:
            pdf.add_page(format=(page.geometry.width_pt, page.geometry.height_pt))
            pdf.image(page.image, 0, 0, page.geometry.width_pt, page.geometry.height_pt)
            pdf.text_mode = TextMode.INVISIBLE
            for line in page.lines:
                _draw(pdf, line)
            pdf.text_mode = TextMode.FILL
        return bytes(pdf.output())


def glyphless_font(characters: set[str]) -> bytes:
    """A TrueType font with an empty glyph of one width for each of `characters`: text it draws can be
    extracted (it maps back to Unicode) but is never seen."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    chars = sorted(c for c in characters | {" "} if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF)
    names = [".notdef", *(f"u{ord(c):05X}" for c in chars)]
    units = 1000
    builder = FontBuilder(units, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({ord(c): f"u{ord(c):05X}" for c in chars})
    empty = TTGlyphPen(None).glyph()
    builder.setupGlyf({name: empty for name in names})
    builder.setupHorizontalMetrics({name: (int(units * CHAR_WIDTH), 0) for name in names})
    builder.setupHorizontalHeader(ascent=int(units * ASCENT), descent=-int(units * DESCENT))
    builder.setupNameTable({"familyName": "VlmcliGlyphless", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=int(units * ASCENT), sTypoDescender=-int(units * DESCENT),
                     usWinAscent=int(units * ASCENT), usWinDescent=int(units * DESCENT))
    builder.setupPost()
    out = io.BytesIO()
    builder.save(out)
    return out.getvalue()


def _draw(pdf, line: TextLine) -> None:
    """One line in its box: the font as high as the box, stretched to its width, on the box's baseline."""
    text = "".join(c for c in line.text if c.isprintable())
    left, top, right, bottom = line.box_pt
    height = bottom - top
    if not text.strip() or height <= 0 or right <= left:
        return
    pdf.set_font("glyphless", size=height / (ASCENT + DESCENT))
    pdf.set_stretching(100)
    natural = pdf.get_string_width(text)
    pdf.set_stretching(100 * (right - left) / natural)
    baseline = bottom - DESCENT * height / (ASCENT + DESCENT)
    pdf.text(left, baseline, text)
    if line.space_to_pt is not None:  # the space as wide as the gap, so extraction sees one word break there
        pdf.set_stretching(100)
        gap = max(line.space_to_pt - right, 0.01 * height)
        pdf.set_stretching(100 * gap / pdf.get_string_width(" "))
        pdf.text(right, baseline, " ")
