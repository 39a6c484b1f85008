"""Pages of words as ALTO 4.2 XML (one `Page` per page; pure, stdlib).

Positions are in pixels at the resolution the first pass read each page at
(MeasurementUnit `pixel`); `WC` is the word's confidence 0-1, left out for
interpolated words. Each page is one text block holding its lines.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from vlmcli.words import Box, PageWords, union, xml_text

NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA_URL = "http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"


def document(name: str, pages: list[tuple[int, PageWords]], software: str, version: str) -> str:
    """The ALTO document of `pages` ((1-based page number, words) in order) of the input called `name`."""
    body = "".join(_page(number, words) for number, words in pages)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<alto xmlns="{NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{NAMESPACE} {SCHEMA_URL}" SCHEMAVERSION="4.2">\n'
            "<Description>\n<MeasurementUnit>pixel</MeasurementUnit>\n"
            f"<sourceImageInformation><fileName>{_text(name)}</fileName></sourceImageInformation>\n"
            f'<Processing ID="processing_1"><processingSoftware><softwareName>{_text(software)}</softwareName>'
            f"<softwareVersion>{_text(version)}</softwareVersion></processingSoftware></Processing>\n"
            f"</Description>\n<Layout>\n{body}</Layout>\n</alto>\n")


def _page(number: int, page: PageWords) -> str:
    scale = page.dpi / 72.0
    width, height = round(page.width_pt * scale), round(page.height_pt * scale)
    out = [f'<Page ID="page_{number}" PHYSICAL_IMG_NR="{number}" WIDTH="{width}" HEIGHT="{height}">\n',
           f'<PrintSpace HPOS="0" VPOS="0" WIDTH="{width}" HEIGHT="{height}">\n']
    lines = page.lines()
    if lines:
        out.append(f'<TextBlock ID="block_{number}_1" {_position(union([w.bbox_pt for w in page.words]), scale)}>\n')
        word_number = 0
        for line_number, line in enumerate(lines, start=1):
            out.append(f'<TextLine ID="line_{number}_{line_number}" '
                       f'{_position(union([w.bbox_pt for w in line]), scale)}>\n')
            strings = []
            for word in line:
                word_number += 1
                confidence = "" if word.confidence is None else f' WC="{word.confidence:.3f}"'
                strings.append(f'<String ID="word_{number}_{word_number}" CONTENT={quoteattr(xml_text(word.text))} '
                               f"{_position(word.bbox_pt, scale)}{confidence}/>")
            out.append("<SP/>".join(strings) + "\n</TextLine>\n")
        out.append("</TextBlock>\n")
    out.append("</PrintSpace>\n</Page>\n")
    return "".join(out)


def _position(box: Box, scale: float) -> str:
    x0, y0, x1, y1 = (round(value * scale) for value in box)
    return f'HPOS="{x0}" VPOS="{y0}" WIDTH="{max(x1 - x0, 0)}" HEIGHT="{max(y1 - y0, 0)}"'


def _text(text: str) -> str:
    from xml.sax.saxutils import escape

    return escape(xml_text(text))
