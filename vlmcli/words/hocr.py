"""Pages of words as hOCR 1.2 (an XHTML document, one `ocr_page` per page; pure, stdlib).

Boxes are in pixels at the resolution the first pass read the page at
(`scan_res`), as hOCR readers expect; confidences are `x_wconf` 0-100, left out
for interpolated words. Each page is one content area and paragraph holding its
lines: the first pass's layout analysis is not kept beyond lines.
"""

from __future__ import annotations

from html import escape
from xml.sax.saxutils import quoteattr

from vlmcli.words import Box, PageWords, union, xml_text

CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word"


def document(name: str, pages: list[tuple[int, PageWords]], system: str) -> str:
    """The hOCR document of `pages` ((1-based page number, words) in order) of the input called `name`."""
    body = "".join(_page(name, number, words) for number, words in pages)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
            '    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
            '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n<head>\n'
            f"<title>{escape(xml_text(name))}</title>\n"
            '<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
            f"<meta name=\"ocr-system\" content={quoteattr(xml_text(system))}/>\n"
            f'<meta name="ocr-capabilities" content="{CAPABILITIES}"/>\n'
            f'<meta name="ocr-number-of-pages" content="{len(pages)}"/>\n'
            f"</head>\n<body>\n{body}</body>\n</html>\n")


def _page(name: str, number: int, page: PageWords) -> str:
    scale = page.dpi / 72.0
    width, height = round(page.width_pt * scale), round(page.height_pt * scale)
    title = f'image "{_plain(name)}"; bbox 0 0 {width} {height}; ppageno {number - 1}; scan_res {round(page.dpi)} ' \
            f"{round(page.dpi)}"
    lines = page.lines()
    out = [f'<div class="ocr_page" id="page_{number}" title={quoteattr(title)}>\n']
    if lines:
        area = _bbox(union([word.bbox_pt for word in page.words]), scale)
        out.append(f'<div class="ocr_carea" id="block_{number}_1" title="{area}">\n'
                   f'<p class="ocr_par" id="par_{number}_1" title="{area}">\n')
        word_number = 0
        for line_number, line in enumerate(lines, start=1):
            box = _bbox(union([word.bbox_pt for word in line]), scale)
            out.append(f'<span class="ocr_line" id="line_{number}_{line_number}" title="{box}">')
            spans = []
            for word in line:
                word_number += 1
                confidence = "" if word.confidence is None else f"; x_wconf {round(word.confidence * 100)}"
                spans.append(f'<span class="ocrx_word" id="word_{number}_{word_number}" '
                             f'title="{_bbox(word.bbox_pt, scale)}{confidence}">{escape(xml_text(word.text))}</span>')
            out.append(" ".join(spans) + "</span>\n")
        out.append("</p>\n</div>\n")
    out.append("</div>\n")
    return "".join(out)


def _bbox(box: Box, scale: float) -> str:
    x0, y0, x1, y1 = (round(value * scale) for value in box)
    return f"bbox {x0} {y0} {max(x1, x0)} {max(y1, y0)}"


def _plain(text: str) -> str:
    """A file name inside a title property: no quotes or semicolons, which delimit properties."""
    return xml_text(text).replace('"', "'").replace(";", ",")
