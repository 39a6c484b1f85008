"""The renderings that need all pages of an input: a Docling model's document (DocTags or DocLang: Markdown, HTML,
text, JSON, CSV tables), plain HTML, the searchable PDF, hOCR and ALTO, a text family's tables as CSV beside any of
its renderings; and `choose`, which picks the rendering for a run."""

from __future__ import annotations

import html as html_escape
from pathlib import Path

from vlmcli.errors import UsageError
from vlmcli.inputs.documents import page_ref
from vlmcli.inputs.pages import PageGeometry, page_image_and_geometry
from vlmcli.jobs import doctags, text_tables
from vlmcli.jobs.outputs import SUFFIXES, Item, PlainRendering, Rendering, encodable, json_line, record, write_file
from vlmcli.model.families import DOCTAGS
from vlmcli.pipeline.results import PageResult
from vlmcli.specs import OutputFormat, PdfSpec

UNIT_PAGE = PageGeometry(doctags.LOC_SCALE, doctags.LOC_SCALE, doctags.LOC_SCALE, doctags.LOC_SCALE)
UNSTATED_EDGE_PX = 2048  # SmolVLM's processor edge, for a result that does not say what it was read at


def choose(fmt: OutputFormat, *, markup: str | None, out_dir: Path | None, tables_dir: Path | None,
           pdf: PdfSpec) -> Rendering:
    """The rendering of `fmt` for this checkpoint (`markup`: the Docling markup it writes, DOCTAGS or DOCLANG, or
    None for text); a combination that cannot work fails before any page is read."""
    if fmt is OutputFormat.pdf and out_dir is None:
        raise UsageError("-f pdf writes one PDF per input: it needs -o/--output")
    if markup != DOCTAGS and fmt is OutputFormat.doctags:
        raise UsageError("-f doctags needs a DocTags checkpoint (granite-docling, SmolDocling)",
                         hint="pass --model granite-docling or --model smoldocling" if markup is None
                         else f"a {markup} model's own output is each page's \"text\" in -f json")
    if markup and fmt in (OutputFormat.hocr, OutputFormat.alto):
        raise UsageError(f"-f {fmt.value} places a plain model's words on a first pass's boxes; a {markup} "
                         "checkpoint gives element boxes instead", hint="use -f json or -f pdf with it")
    if markup and (fmt is not OutputFormat.doctags or tables_dir is not None):
        doctags.require()
    if markup and fmt not in (OutputFormat.doctags, OutputFormat.pdf):
        return StructuredDocument(fmt, tables_dir, pdf, markup)
    if fmt is OutputFormat.pdf:
        rendering: Rendering = SearchablePdf(markup, pdf)
    elif fmt in (OutputFormat.hocr, OutputFormat.alto):
        rendering = WordsDocument(fmt)
    else:
        rendering = PlainHtml() if fmt is OutputFormat.html else PlainRendering(fmt)
    return TablesBeside(rendering, tables_dir, markup) if tables_dir is not None else rendering


class TablesBeside:
    """Another rendering (`inner`: a text family's, or a Docling model's searchable PDF or raw DocTags), and each
    table of the pages as CSV in `tables_dir`, named as StructuredDocument names them: `<input>.p<page>.t<k>.csv`.
    A text family's tables are found in its pages' text (HTML, OTSL, Markdown pipe tables: text_tables.py). An
    input's pages are rendered together, so its files are written once its pages are all in."""

    streams = False

    def __init__(self, inner: Rendering, tables_dir: Path, markup: str | None) -> None:
        self.inner, self.tables_dir, self.markup, self.suffix = inner, tables_dir, markup, inner.suffix

    def page(self, item: Item, first_in_stream: bool) -> str:
        raise AssertionError("a run writing tables renders each input whole")

    def document(self, name: str, items: list[Item]) -> str | bytes:
        for page_number, index, csv in self._tables(name, [item for item in items if isinstance(item, PageResult)]):
            write_file(self.tables_dir / f"{name}.p{page_number}.t{index}.csv", csv)
        return self.inner.document(name, items)

    def _tables(self, name: str, pages: list[PageResult]) -> list[tuple[int, int, str]]:
        if self.markup is not None:
            doc = doctags.document(name, [doctags.DocTagsPage(page.page_number, page.text, UNIT_PAGE)
                                          for page in pages], self.markup)
            return doctags.tables(doc)
        return [(page.page_number, index, text_tables.to_csv(table)) for page in pages
                for index, table in enumerate(text_tables.find_tables(page.readable), start=1)]


class PlainHtml:
    """A plain model's pages as one HTML document: a section per page, its lines as paragraphs' lines."""

    streams, suffix = False, SUFFIXES[OutputFormat.html]

    def page(self, item: Item, first_in_stream: bool) -> str:
        if not isinstance(item, PageResult):
            return ""
        lines = "<br>\n".join(html_escape.escape(line) for line in encodable(item.readable).splitlines())
        return f'<section id="page-{item.page_number}">\n<p>{lines}</p>\n</section>\n'

    def document(self, name: str, items: list[Item]) -> str:
        body = "".join(self.page(item, first_in_stream=False) for item in items)
        return (f'<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>{html_escape.escape(name)}</title>\n'
                f"</head>\n<body>\n{body}</body>\n</html>\n")


class StructuredDocument:
    """A Docling model's pages (`markup`: DocTags or DocLang) as one DoclingDocument per input, exported as
    Markdown, HTML, text or JSON Lines (each page's record with its elements' boxes, then a record with the whole
    document); tables to CSV."""

    streams = False

    def __init__(self, fmt: OutputFormat, tables_dir: Path | None, pdf: PdfSpec, markup: str = DOCTAGS) -> None:
        self.fmt, self.suffix, self.tables_dir, self.pdf, self.markup = fmt, SUFFIXES[fmt], tables_dir, pdf, markup

    def page(self, item: Item, first_in_stream: bool) -> str:
        raise AssertionError("DocTags documents are rendered whole")

    def document(self, name: str, items: list[Item]) -> str:
        pages = [doctags.DocTagsPage(item.page_number, item.text, self._geometry(item))
                 for item in items if isinstance(item, PageResult)]
        doc = doctags.document(name, pages, self.markup)
        if self.tables_dir is not None:
            for page_number, index, csv in doctags.tables(doc):
                write_file(self.tables_dir / f"{name}.p{page_number}.t{index}.csv", csv)
        if self.fmt is OutputFormat.markdown:
            return doctags.markdown(doc)
        if self.fmt is OutputFormat.html:
            return doctags.html(doc)
        if self.fmt is OutputFormat.text:
            return doctags.text(doc)
        return self._json(doc, pages, items)

    def _json(self, doc, pages: list[doctags.DocTagsPage], items: list[Item]) -> str:
        found = doctags.elements(doc, pages)
        geometry = {page.page_number: page.geometry for page in pages}
        lines = []
        for item in items:
            extra = {}
            if isinstance(item, PageResult):
                page = geometry[item.page_number]
                extra = {"page_width_px": page.width_px, "page_height_px": page.height_px,
                         "page_width_pt": round(page.width_pt, 2), "page_height_pt": round(page.height_pt, 2),
                         "elements": found[item.page_number]}
            lines.append(json_line({**record(item), **extra}))
        source = str(items[0].source)
        return "".join(lines) + json_line({"source": source, "document": doc.export_to_dict()})

    def _geometry(self, item: PageResult) -> PageGeometry:
        if self.fmt is not OutputFormat.json:
            return UNIT_PAGE  # Markdown, HTML and text carry no boxes
        return _page(item, self.pdf)[1]


class SearchablePdf:
    """The input's pages as a searchable PDF (searchable_pdf.py). Where the text goes, first found first: the boxes
    the model gave (a Docling model's elements, or those its family's parser found: DeepSeek-OCR-2's grounding),
    each box's text in it; a first pass's word boxes; lines down the page."""

    streams, suffix = False, SUFFIXES[OutputFormat.pdf]

    def __init__(self, markup: str | None, pdf: PdfSpec) -> None:
        self.markup, self.pdf = markup, pdf

    def page(self, item: Item, first_in_stream: bool) -> str:
        raise AssertionError("searchable PDFs are written whole")

    def document(self, name: str, items: list[Item]) -> bytes:
        from vlmcli.jobs import searchable_pdf

        pages = []
        for item in items:
            if isinstance(item, PageResult):
                image, geometry = _page(item, self.pdf)
                boxes = self._boxes(item, geometry, name)
                if boxes:
                    lines = searchable_pdf.box_lines(boxes, geometry)
                elif item.words is not None and item.words.words:
                    lines = searchable_pdf.word_lines(item.words)
                else:
                    lines = searchable_pdf.plain_lines(item.readable, geometry)
                pages.append(searchable_pdf.SearchablePage(image, geometry, lines))
        return searchable_pdf.write_pdf(pages)

    def _boxes(self, item: PageResult, geometry: PageGeometry, name: str) -> list[tuple[str, tuple]]:
        """The page's boxes as (text, (left, top, right, bottom) fractions of the page)."""
        from vlmcli.jobs.searchable_pdf import words_of

        if item.parsed is not None and item.parsed.boxes:
            return [(words_of(box.text), box.fractions()) for box in item.parsed.boxes]
        if self.markup is None:
            return []
        page = doctags.DocTagsPage(item.page_number, item.text, geometry)
        doc = doctags.document(name, [page], self.markup)
        return [(element["text"], (left / geometry.width_px, top / geometry.height_px, right / geometry.width_px,
                                   bottom / geometry.height_px))
                for element in doctags.elements(doc, [page])[item.page_number]
                for left, top, right, bottom in [element["bbox_px"]]]


class WordsDocument:
    """The input's pages as hOCR or ALTO: the model's words on the first pass's boxes (vlmcli/words)."""

    streams = False

    def __init__(self, fmt: OutputFormat) -> None:
        self.fmt, self.suffix = fmt, SUFFIXES[fmt]

    def page(self, item: Item, first_in_stream: bool) -> str:
        raise AssertionError("hOCR and ALTO documents are written whole")

    def document(self, name: str, items: list[Item]) -> str:
        from vlmcli import __version__
        from vlmcli.words import alto, hocr

        pages = [(item.page_number, item.words) for item in items
                 if isinstance(item, PageResult) and item.words is not None]
        if self.fmt is OutputFormat.hocr:
            return hocr.document(name, pages, f"vlmcli {__version__}")
        return alto.document(name, pages, "vlmcli", __version__)


def _page(item: PageResult, pdf: PdfSpec):
    """The page's image as it was read (whole), and its geometry."""
    max_input_px = item.longest_edge_px or UNSTATED_EDGE_PX
    return page_image_and_geometry(page_ref(item.source, item.page_number, pdf), max_input_px, pdf)
