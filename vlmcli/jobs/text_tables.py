"""The tables in a page a text-writing family wrote, as rows of cells and as CSV (pure; stdlib and markdown-it).

Three ways a family writes a table, found wherever they sit in the page's text and numbered in page order:
- HTML `<table>` (LightOnOCR-2, olmOCR-2, Nanonets-OCR2, DeepSeek-OCR-2, GLM-OCR): `thead`/`tbody`/`tfoot` are
  containers; a cell that spans rows or columns repeats its value in each of them (a CSV grid has no spans);
  tags inside a cell keep only their text (`<br>` a line break); a table the token limit cut off ends where the
  text ends (open cells and rows are closed, a cut-off tag dropped). A table inside a cell is a table of its own.
- OTSL cell tokens (PaddleOCR-VL `--task table`, which its toolkit converts to HTML): `<fcel>`/`<ched>`/`<rhed>`
  /`<srow>` start a cell with text, `<ecel>` an empty one, `<lcel>`/`<ucel>`/`<xcel>` continue the cell to the
  left/above/both (its value repeated), `<nl>` ends a row.
- Markdown pipe tables (any family writing Markdown): a header row, then the GFM delimiter row (`|---|:-:|`),
  then body rows; parsed by markdown-it (rich's Markdown parser, a dependency already), whose cell text has the
  inline marks taken out.

The HTML reader is written by hand on the standard library's tokenizer (html.parser): docling-core writes HTML
but does not read it (that is docling's HTML backend, not installed with the `[docling]` extra), and
pandas.read_html needs pandas and lxml, which vlmcli does not depend on (`--tables` of a text family needs no
extra), and turns cells into numbers ("007" -> 7.0, "4.50" -> 4.5), where the CSV should hold what the model
wrote.
"""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

Table = list[list[str]]  # rows of cells, every row as wide as the widest

# A model's typo must not allocate millions of cells: spans are cut at MAX_SPAN, rows at MAX_SPAN columns
MAX_SPAN = 1000
_CUT_OFF_TAG = re.compile(r"<[^<>]*$")
_OTSL_CELL = r"<(?:fcel|ecel|lcel|ucel|xcel|ched|rhed|srow)>"
# A run of OTSL cells and row ends; cell text stops at any tag
_OTSL_RUN = re.compile(rf"{_OTSL_CELL}(?:[^<]|<(?!/?[A-Za-z]))*(?:(?:{_OTSL_CELL}|<nl>)(?:[^<]|<(?!/?[A-Za-z]))*)*")
_OTSL_TOKEN = re.compile(r"<(fcel|ecel|lcel|ucel|xcel|ched|rhed|srow|nl)>")


def find_tables(text: str) -> list[Table]:
    """Every table of `text` (HTML, OTSL, Markdown), in the order they start; tables without a cell left out."""
    found: list[tuple[int, Table]] = []
    masked = list(text)
    for start, end, table in [*_html_tables(text), *_otsl_tables(text)]:
        found.append((start, table))
        for index in range(start, end):  # the Markdown reader must not see a table twice, nor lose line numbers
            if masked[index] != "\n":
                masked[index] = " "
    found.extend(_markdown_tables("".join(masked)))
    return [table for _, table in sorted(found, key=lambda pair: pair[0]) if any(any(row) for row in table)]


def to_csv(table: Table) -> str:
    """A table as CSV (RFC 4180 quoting, `\\n` line ends), its first row first: as docling-core writes a DocTags
    table whose header it knows."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(table)
    return buffer.getvalue()


class _Grid:
    """One table being read: cells placed left to right in rows, spans filled with the spanning cell's value."""

    def __init__(self) -> None:
        self.rows: list[dict[int, str]] = []
        self.spans: list[tuple[int, int, int, str]] = []  # rowspans reaching down: last row, column, width, value
        self.in_row = False

    def start_row(self) -> None:
        row = len(self.rows)
        self.rows.append({})
        self.in_row = True
        for last_row, column, width, value in self.spans:
            if last_row >= row:
                self.rows[row].update((column + across, value) for across in range(width))

    def add_cell(self, value: str, rowspan: int = 1, colspan: int = 1) -> None:
        if not self.in_row:
            self.start_row()
        row = len(self.rows) - 1
        column = 0
        while column in self.rows[row]:
            column += 1
        colspan = min(colspan, MAX_SPAN - column)
        if colspan < 1:
            return  # past the widest row a table may have
        self.rows[row].update((column + across, value) for across in range(colspan))
        if rowspan > 1:
            self.spans.append((row + rowspan - 1, column, colspan, value))

    def table(self) -> Table:
        """The rows as lists, padded to the widest; spans past the last row end there, as HTML clips them."""
        width = max((max(row) + 1 for row in self.rows if row), default=0)
        return [[row.get(column, "") for column in range(width)] for row in self.rows]


def _span(attributes: list[tuple[str, str | None]], name: str) -> int:
    """A cell's rowspan or colspan; `rowspan="0"` (HTML: to the end of the table) spans MAX_SPAN rows."""
    try:
        span = int(str(dict(attributes).get(name)).strip())
    except ValueError:
        return 1
    return MAX_SPAN if span == 0 and name == "rowspan" else max(1, min(span, MAX_SPAN))


class _Open:
    """A table being read: where it starts, its grid, and its open cell's text pieces and spans."""

    def __init__(self, start: int) -> None:
        self.start, self.grid = start, _Grid()
        self.cell: tuple[list[str | None], int, int] | None = None  # None among the pieces: a <br>

    def close_cell(self) -> None:
        if self.cell is not None:
            pieces, rowspan, colspan = self.cell
            text = "".join("\0" if piece is None else piece.replace("\0", "") for piece in pieces)
            lines = (" ".join(line.split()) for line in text.split("\0"))  # the source's line breaks are spaces
            self.grid.add_cell("\n".join(filter(None, lines)), rowspan, colspan)
            self.cell = None


class _HtmlTables(HTMLParser):
    """Collects each `<table>` as (start offset, end offset, its grid); a table inside a cell is read apart, and
    the cell goes on after it."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text = text
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", text)]
        self.open: list[_Open] = []  # innermost last
        self.found: list[tuple[int, int, Table]] = []

    def position(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "table":
            self.open.append(_Open(self.position()))
            return
        if not self.open:
            return
        table = self.open[-1]
        if tag == "tr":
            table.close_cell()
            table.grid.start_row()
        elif tag in ("td", "th"):
            table.close_cell()
            table.cell = ([], _span(attrs, "rowspan"), _span(attrs, "colspan"))
        elif tag == "br" and table.cell is not None:
            table.cell[0].append(None)

    def handle_endtag(self, tag: str) -> None:
        if not self.open:
            return
        table = self.open[-1]
        if tag in ("td", "th"):
            table.close_cell()
        elif tag == "tr":
            table.close_cell()
            table.grid.in_row = False
        elif tag == "table":
            end = self.text.find(">", self.position())
            self.close_table(len(self.text) if end < 0 else end + 1)

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1].cell is not None:
            self.open[-1].cell[0].append(data)

    def close_table(self, end: int) -> None:
        table = self.open.pop()
        table.close_cell()
        self.found.append((table.start, end, table.grid.table()))


def _html_tables(text: str) -> list[tuple[int, int, Table]]:
    body = _CUT_OFF_TAG.sub("", text)
    parser = _HtmlTables(body)
    parser.feed(body)
    parser.close()
    while parser.open:  # cut off before </table>
        parser.close_table(len(body))
    return parser.found


def _otsl_tables(text: str) -> list[tuple[int, int, Table]]:
    found = []
    for run in _OTSL_RUN.finditer(text):
        rows: list[list[str]] = [[]]
        tokens = list(_OTSL_TOKEN.finditer(run.group(0)))
        for index, token in enumerate(tokens):
            end = tokens[index + 1].start() if index + 1 < len(tokens) else len(run.group(0))
            kind, value = token.group(1), " ".join(run.group(0)[token.end():end].split())
            row = rows[-1]
            if kind == "nl":
                rows.append([])
            elif kind == "lcel" or kind == "xcel":
                row.append(row[-1] if row else "")
            elif kind == "ucel":
                above = rows[-2] if len(rows) > 1 else []
                row.append(above[len(row)] if len(row) < len(above) else "")
            else:
                row.append("" if kind == "ecel" else value)
        rows = [row for row in rows if row]
        width = max(len(row) for row in rows)
        found.append((run.start(), run.end(), [row + [""] * (width - len(row)) for row in rows]))
    return found


def _markdown_tables(text: str) -> list[tuple[int, Table]]:
    from markdown_it import MarkdownIt

    line_starts = [0] + [match.end() for match in re.finditer("\n", text)]
    found: list[tuple[int, Table]] = []
    rows: list[list[str]] | None = None  # the table being read
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        if token.type == "table_open":
            rows = []
            found.append((line_starts[token.map[0]] if token.map else 0, rows))
        elif token.type == "table_close":
            rows = None
        elif rows is not None and token.type == "tr_open":
            rows.append([])
        elif rows is not None and token.type == "inline":
            rows[-1].append(" ".join(_inline_text(token).split()))
    return found


def _inline_text(token) -> str:
    """A cell's words: text, code and images' alt text, without emphasis or link marks."""
    return "".join(child.content if child.type in ("text", "code_inline", "image") else
                   " " if child.type in ("softbreak", "hardbreak") else "" for child in token.children or [])
