"""Page results -> output: to stdout, or one file per input, rendered by a `Rendering`.

The plain renderings (text, markdown, JSON Lines, raw DocTags) go page by page and
stream; the others (documents of a DocTags model, HTML, searchable PDF: see
renderings.py) need all pages of an input first. Files are written atomically
(temporary file + rename in the same folder), once all pages of their input are
done, so an interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from vlmcli.errors import OutputError
from vlmcli.files import atomic_write
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.specs import OutputFormat

Item = PageResult | PageFailure
SUFFIXES = {OutputFormat.text: ".txt", OutputFormat.markdown: ".md", OutputFormat.json: ".jsonl",
            OutputFormat.html: ".html", OutputFormat.doctags: ".doctags", OutputFormat.pdf: ".pdf",
            OutputFormat.hocr: ".hocr", OutputFormat.alto: ".xml"}
PAGE_BREAK = "\f\n"  # between pages in text output, as pdftotext does
DOCTAGS_PAGE_BREAK = "<page_break>\n"  # between pages of raw DocTags, as Docling writes multi-page DocTags


class Rendering(Protocol):
    suffix: str
    streams: bool  # pages can be written as they come; otherwise an input's pages are rendered together

    def page(self, item: Item, first_in_stream: bool) -> str:
        """One page as it appears in a stream ("" for nothing)."""

    def document(self, name: str, items: list[Item]) -> str | bytes:
        """All pages of one input (named `name` in the output folder), in order."""


class PlainRendering:
    """Text, markdown, JSON Lines or raw DocTags: each page on its own."""

    streams = True

    def __init__(self, fmt: OutputFormat) -> None:
        self.fmt, self.suffix = fmt, SUFFIXES[fmt]

    def page(self, item: Item, first_in_stream: bool) -> str:
        return render(item, self.fmt, first_in_stream)

    def document(self, name: str, items: list[Item]) -> str:
        chunks: list[str] = []
        for item in items:
            chunk = self.page(item, first_in_stream=not chunks)
            if chunk:
                chunks.append(chunk)
        return "".join(chunks)


def render(item: Item, fmt: OutputFormat, first_in_stream: bool) -> str:
    """One page as it appears in the output stream ("" for a failed page outside JSON)."""
    if fmt is OutputFormat.json:
        return json_line(record(item))
    if isinstance(item, PageFailure):
        return ""
    text = encodable(item.text if fmt is OutputFormat.doctags else item.readable)
    if fmt is OutputFormat.markdown:
        return f"<!-- {comment_safe(item.source.name)}, page {item.page_number} -->\n\n{text}\n\n"
    separator = DOCTAGS_PAGE_BREAK if fmt is OutputFormat.doctags else PAGE_BREAK
    return ("" if first_in_stream else separator) + text + "\n"


def comment_safe(text: str) -> str:
    """`text` for the inside of an HTML comment (Markdown renders its comments as HTML): escaped like HTML, and
    no run of dashes left that could end the comment early (`-->`, `--!>`)."""
    safe = html.escape(encodable(text))
    while "--" in safe:
        safe = safe.replace("--", "-&#45;")
    return safe


def json_line(data: dict) -> str:
    line = json.dumps(data, ensure_ascii=False)
    if encodable(line) != line:
        line = json.dumps(data, ensure_ascii=True)  # lone surrogates survive only as \u escapes
    return line + "\n"


def encodable(text: str) -> str:
    """`text` as UTF-8 can carry it: lone surrogates, which no file or terminal can take, replaced."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def record(item: Item) -> dict:
    """The JSON record of a page."""
    if isinstance(item, PageFailure):
        return {"source": str(item.source), "page_number": item.page_number, "error": item.error.message,
                "category": item.error.category, "exit_code": int(item.error.exit_code), "attempts": item.attempts}
    words = {} if item.words is None else {
        "page_width_pt": round(item.words.width_pt, 2), "page_height_pt": round(item.words.height_pt, 2),
        "first_pass": item.words.engine, "words": [word.record() for word in item.words.words]}
    return {
        "source": str(item.source), "page_number": item.page_number, "text": item.readable,
        "image_tokens": item.image_tokens, "new_tokens": item.new_tokens,
        "seconds": round(item.seconds, 3), "finish_reason": item.finish_reason, "bands": item.bands,
        "longest_edge_px": item.longest_edge_px, "split": item.split, "attempts": item.attempts,
        "decoding": item.decoding, **({"turned_deg": item.turned_deg} if item.turned_deg else {}), **words,
        **_parsed(item),
    }


def _parsed(item: PageResult) -> dict:
    """What the family's parser found beside the text: the raw output (where the text shown differs), fields, and
    boxes ([x0, y0, x1, y1] as fractions of the page's width and height, top-left origin)."""
    if item.parsed is None:
        return {}
    found = {"raw_text": item.text} if item.parsed.text != item.text else {}
    if item.parsed.fields:
        found["fields"] = item.parsed.fields
    if item.parsed.boxes:
        found["boxes"] = [{"label": box.label, "text": box.text, "bbox": [round(v, 4) for v in box.fractions()]}
                          for box in item.parsed.boxes]
    return found


def write_file(target: Path, content: str | bytes) -> None:
    """Write an output file atomically; a failure is the user's to fix (disk full, folder removed)."""
    try:
        atomic_write(target, content)
    except OSError as exc:  # the file is absent, never half-written
        raise OutputError(f"{target}: cannot write ({exc.strerror or exc})",
                          hint="free space or fix the folder, then rerun with --resume") from None


class Sink:
    """Collects page results; streams them to stdout (in the order they come), or writes one file per input once
    all the pages its plan names are in, whatever order they came in."""

    def __init__(self, rendering: Rendering, out_dir: Path | None, inputs: list[Path],
                 write: Callable[[str], None]) -> None:
        self.rendering, self.out_dir, self.inputs, self.write = rendering, out_dir, inputs, write
        self.written: list[Path] = []
        self._expected: dict[Path, int] = {}  # pages planned per input
        self._pending: dict[Path, list[Item]] = {}
        self._any_output = False
        self._names: dict[Path, str] = {}  # an input's name in the output folder, given in listing order

    def plan(self, refs: list) -> None:
        """The pages to come (`PageRef`s): an input is complete when all of its own have been added."""
        for ref in refs:
            self._expected[ref.source] = self._expected.get(ref.source, 0) + 1

    def add(self, item: Item) -> None:
        if self.out_dir is None and self.rendering.streams:
            chunk = self.rendering.page(item, first_in_stream=not self._any_output)
            self._any_output = self._any_output or bool(chunk)
            self.write(chunk)
            return
        if item.page_number is None:
            return  # an input that could not be opened has no pages, and no file
        if item.source not in self._expected:
            raise AssertionError(f"{item.source}: a page of an input that was not planned")
        pending = self._pending.setdefault(item.source, [])
        pending.append(item)
        if len(pending) >= self._expected[item.source]:
            self._write(item.source, sorted(self._pending.pop(item.source), key=lambda page: page.page_number))

    def _write(self, source: Path, items: list[Item]) -> None:
        """Render a complete input, if it has at least one good page: into its file, or to stdout."""
        if not any(isinstance(item, PageResult) for item in items):
            return
        name = self._name(source)
        content = self.rendering.document(name, items)
        if self.out_dir is None:
            self.write(content)
        else:
            target = self.out_dir / (name + self.rendering.suffix)
            write_file(target, content)
            self.written.append(target)

    def assign(self, documents: list[Path]) -> None:
        """Name the output files of `documents` now, in this order, whatever order they are completed in."""
        for source in documents:
            self._name(source)

    def targets(self) -> list[Path]:
        """The output files named so far (none without an output folder)."""
        if self.out_dir is None:
            return []
        return [self.out_dir / (name + self.rendering.suffix) for name in self._names.values()]

    def _name(self, source: Path) -> str:
        """The input's name in the output folder, before the suffix (relative_name); a second input of the same
        name gets -2, -3..."""
        if source in self._names:
            return self._names[source]
        relative = relative_name(source, self.inputs)
        name, counter = relative, 2
        while name in self._names.values():  # x/a.pdf and y/a.pdf given together
            name = f"{relative}-{counter}"
            counter += 1
        self._names[source] = name
        return name


def relative_name(source: Path, inputs: list[Path]) -> str:
    """A document's path relative to the folder input it was found in, or its file name: its output file's
    name before the suffix, and its shard key."""
    for root in inputs:
        if root.is_dir() and source.is_relative_to(root):
            return source.relative_to(root).as_posix()
    return source.name
