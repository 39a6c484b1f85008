"""Docling markup pages -> one DoclingDocument per input, and what it exports: Markdown, HTML, text, elements with
their boxes, CSV tables (docling-core, the `vlmcli[docling]` extra, imported here only).

Two markups: DocTags (granite-docling-258M, SmolDocling) and DocLang, its XML successor (Granite-Docling v2).
A model's page can end anywhere (the token limit, a loop) or name a tag docling
does not know; `repair` / `repair_doclang` close what is open and keep unknown
elements' text as text, so a page converts as far as it goes and nothing raises on it.
Boxes: `<loc_N>` is N/500 of the page's width or height from its top-left corner;
DocLang's `<location value="N"/>` is N/512 (its default resolution; docling-core reads a stated one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vlmcli.errors import DependencyError
from vlmcli.inputs.pages import PageGeometry
from vlmcli.model.families import DOCLANG, DOCTAGS

INSTALL_HINT = 'pip install "vlmcli[docling]"'
ROOT_DOCLANG = "doclang"
LOC_SCALE = 500
_TAG = re.compile(r"<(/?)([a-z_]+[0-9]*)>")
_OPEN_FRAGMENT = re.compile(r"<[^<>]*$")  # a tag cut off by the end of generation
_CONTAINERS = {"doctag", "otsl", "chart", "ordered_list", "unordered_list", "caption", "footnote", "formula",
               "list_item", "page_footer", "page_header", "picture", "table", "text", "title", "document_index",
               "code", "checkbox_selected", "checkbox_unselected", "form", "key_value_region", "paragraph",
               "reference", "handwritten_text", "smiles", "inline",
               *(f"section_header_level_{level}" for level in range(1, 7))}


@dataclass(frozen=True)
class DocTagsPage:
    page_number: int  # 1-based, in the input
    doctags: str
    geometry: PageGeometry


def require() -> None:
    """Fail before any page is read if the conversion could not run."""
    try:
        import docling_core  # noqa: F401
    except ImportError:
        raise DependencyError("converting DocTags needs docling-core", hint=INSTALL_HINT) from None


def repair(doctags: str) -> str:
    """`doctags` made well-formed: a cut-off tag dropped, unknown elements turned into text, open elements
    closed in order, and plain text (no tags at all) wrapped as one text element."""
    text = _OPEN_FRAGMENT.sub("", doctags.strip())
    if "<" not in text:
        return f"<doctag><text>{text}</text></doctag>" if text else "<doctag></doctag>"
    open_tags: list[str] = []

    def visit(match: re.Match) -> str:
        closing, name = match.group(1), match.group(2)
        if name not in _CONTAINERS and not _is_token(name):
            name = "text"  # keep the unknown element's words
        if name not in _CONTAINERS:
            return match.group(0)
        if not closing:
            open_tags.append(name)
        elif name in open_tags:
            while open_tags and open_tags.pop() != name:
                pass
        return f"<{closing}{name}>"

    text = _TAG.sub(visit, text)
    if "doctag" not in open_tags and not text.startswith("<doctag>"):
        text, open_tags = "<doctag>" + text, ["doctag", *open_tags]
    return text + "".join(f"</{name}>" for name in reversed(open_tags))


def document(name: str, pages: list[DocTagsPage], markup: str = DOCTAGS) -> Any:
    """One DoclingDocument of an input's pages (`markup`: DOCTAGS or DOCLANG), in order, numbered as in the input,
    boxes in page pixels."""
    from docling_core.types.doc.document import DoclingDocument, DocTagsDocument

    if markup == DOCLANG:
        doc = DoclingDocument.concatenate([_doclang_page(page.doctags) for page in pages])
        doc.name = name
    else:
        tagged = DocTagsDocument.from_doctags_and_image_pairs([repair(page.doctags) for page in pages], None)
        doc = DoclingDocument.load_from_doctags(tagged, document_name=name)
    _to_page_pixels(doc, pages)
    return doc


_CUT_OFF_XML_TAG = re.compile(r"<(?=[A-Za-z_/])[^<>]*$")  # "3 < 4" is text, "<locat" a tag the limit cut
_XML_TAG = re.compile(r"<(/?)([A-Za-z_][\w.-]*)((?:\s[^<>]*?)?)(/?)>")


def repair_doclang(text: str) -> str:
    """`text` made a well-formed DocLang document: a cut-off tag dropped, unknown elements turned into text
    elements (unknown self-closing tags dropped), closing tags that close nothing dropped, open elements closed in
    order, words outside any element wrapped as a text element, and one `<doclang>` root (the model's own, with
    its attributes, where it wrote one)."""
    from docling_core.transforms.serializer._doclang_utils import DocLangToken

    known = {token.value for token in DocLangToken} - {ROOT_DOCLANG}
    body = _CUT_OFF_XML_TAG.sub("", text.strip())
    root, parts, open_tags, position = f"<{ROOT_DOCLANG}>", [], [], 0

    def words(chunk: str) -> None:
        parts.append(f"<text>{chunk}</text>" if not open_tags and chunk.strip() else chunk)

    for match in _XML_TAG.finditer(body):
        words(body[position:match.start()])
        position = match.end()
        closing, name, attributes, self_closing = match.groups()
        if name == ROOT_DOCLANG:
            root = f"<{ROOT_DOCLANG}{attributes}>" if not closing and not self_closing else root
        elif self_closing:
            parts.append(match.group(0) if name in known else "")
        elif closing:
            name = name if name in known else "text"
            while name in open_tags:  # close what is open inside it too
                parts.append(f"</{open_tags.pop()}>")
                if parts[-1] == f"</{name}>":
                    break
        else:
            name, attributes = (name, attributes) if name in known else ("text", "")
            open_tags.append(name)
            parts.append(f"<{name}{attributes}>")
    words(body[position:])
    return root + "".join(parts) + "".join(f"</{name}>" for name in reversed(open_tags)) + f"</{ROOT_DOCLANG}>"


def _doclang_page(doclang: str) -> Any:
    """One page's DoclingDocument (page 1, sized by DocLang's resolution); a page docling-core still cannot read
    (markup broken inside an element) keeps its words as one text element."""
    from docling_core.transforms.deserializer.doclang import DocLangDocDeserializer

    try:
        return DocLangDocDeserializer().deserialize_str(repair_doclang(doclang), repair_unescaped_text=True)
    except ValueError:
        words = re.sub(r"\s+", " ", re.sub(r"<[^<>]*>", " ", doclang)).strip().replace("]]>", "]] >")
        body = f"<text><![CDATA[{words}]]></text>" if words else ""
        return DocLangDocDeserializer().deserialize_str(f"<{ROOT_DOCLANG}>{body}</{ROOT_DOCLANG}>")


def elements(doc: Any, pages: list[DocTagsPage]) -> dict[int, list[dict]]:
    """Per page number: each element's label, text and box, in page pixels (top-left origin) and in PDF points
    (bottom-left origin, as PDF draws), as [left, top, right, bottom] and [x0, y0, x1, y1]."""
    geometry = {page.page_number: page.geometry for page in pages}
    found: dict[int, list[dict]] = {page.page_number: [] for page in pages}
    for item, _level in doc.iterate_items(included_content_layers=_all_layers()):
        for prov in getattr(item, "prov", []):
            page = geometry.get(prov.page_no)
            if page is None:
                continue
            box = prov.bbox
            scale = page.width_pt / page.width_px
            found[prov.page_no].append({
                "label": str(item.label.value), "text": element_text(item, doc),
                "bbox_px": [round(v, 1) for v in (box.l, box.t, box.r, box.b)],
                "bbox_pt": [round(v, 2) for v in (box.l * scale, page.height_pt - box.b * scale, box.r * scale,
                                                  page.height_pt - box.t * scale)]})
    return found


def element_text(item: Any, doc: Any) -> str:
    """An element's words; a table's rows as lines of cells separated by spaces."""
    if type(item).__name__ == "TableItem":
        grid = item.data.grid
        return "\n".join(" ".join(cell.text for cell in row if cell.text) for row in grid)
    return getattr(item, "text", "") or ""


def tables(doc: Any) -> list[tuple[int, int, str]]:
    """Every table as CSV: (page number, 1-based index on its page, CSV text)."""
    found, per_page = [], {}
    for table in doc.tables:
        page_number = table.prov[0].page_no if table.prov else 0
        per_page[page_number] = per_page.get(page_number, 0) + 1
        frame = table.export_to_dataframe(doc=doc)
        named = not all(isinstance(column, int) for column in frame.columns)
        found.append((page_number, per_page[page_number], frame.to_csv(index=False, header=named)))
    return found


def markdown(doc: Any) -> str:
    return doc.export_to_markdown() + "\n"


def html(doc: Any) -> str:
    return doc.export_to_html() + "\n"


def text(doc: Any) -> str:
    return doc.export_to_text() + "\n"


def _to_page_pixels(doc: Any, pages: list[DocTagsPage]) -> None:
    """docling numbers the pages it is given 1..n, each on its markup's grid when it has no images (DocTags: a
    unit square; DocLang: its resolution); give them the input's page numbers and sizes, and scale every box."""
    from docling_core.types.doc.base import Size

    numbers = {index: page for index, page in enumerate(pages, start=1)}
    grids = {index: page_item.size for index, page_item in doc.pages.items()}
    for item, _level in doc.iterate_items(included_content_layers=_all_layers()):
        for prov in getattr(item, "prov", []):
            page, grid = numbers[prov.page_no], grids[prov.page_no]
            box = prov.bbox
            x_scale, y_scale = page.geometry.width_px / grid.width, page.geometry.height_px / grid.height
            box.l, box.r = box.l * x_scale, box.r * x_scale
            box.t, box.b = box.t * y_scale, box.b * y_scale
            prov.page_no = page.page_number
    renumbered = {}
    for index, page_item in doc.pages.items():
        page = numbers[index]
        page_item.page_no = page.page_number
        page_item.size = Size(width=page.geometry.width_px, height=page.geometry.height_px)
        renumbered[page.page_number] = page_item
    doc.pages = renumbered


def _all_layers() -> set:
    from docling_core.types.doc.document import ContentLayer

    return set(ContentLayer)


def _is_token(name: str) -> bool:
    """Tags without a closing partner: boxes, table cells, row ends, page breaks."""
    return name.startswith("loc_") or name in {"fcel", "ecel", "lcel", "ucel", "xcel", "nl", "ched", "rhed", "srow",
                                               "page_break", "shed", "data", "column_header", "row_header"}
