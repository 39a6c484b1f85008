"""Render page results as text, markdown or JSON Lines, to stdout or to one file per input.

Files are written atomically (temporary file + rename in the same folder), so
an interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from vlmcli.errors import OutputError
from vlmcli.files import atomic_write
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.specs import OutputFormat

SUFFIXES = {OutputFormat.text: ".txt", OutputFormat.markdown: ".md", OutputFormat.json: ".jsonl"}
PAGE_BREAK = "\f\n"  # between pages in text output, as pdftotext does


def render(item: PageResult | PageFailure, fmt: OutputFormat, first_in_stream: bool) -> str:
    """One page as it appears in the output stream ("" for a failed page outside JSON)."""
    if fmt is OutputFormat.json:
        line = json.dumps(record(item), ensure_ascii=False)
        if not _encodable(line):
            line = json.dumps(record(item), ensure_ascii=True)  # lone surrogates survive only as \u escapes
        return line + "\n"
    if isinstance(item, PageFailure):
        return ""
    text = item.text if _encodable(item.text) else item.text.encode("utf-8", "replace").decode("utf-8")
    if fmt is OutputFormat.markdown:
        return f"<!-- {item.source.name}, page {item.page_number} -->\n\n{text}\n\n"
    return ("" if first_in_stream else PAGE_BREAK) + text + "\n"


def _encodable(text: str) -> bool:
    """False if `text` holds lone surrogates, which no UTF-8 file or terminal can take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def record(item: PageResult | PageFailure) -> dict:
    """The JSON record of a page."""
    if isinstance(item, PageFailure):
        return {"source": str(item.source), "page_number": item.page_number, "error": item.error.message,
                "category": item.error.category, "exit_code": int(item.error.exit_code), "attempts": item.attempts}
    return {
        "source": str(item.source), "page_number": item.page_number, "text": item.text,
        "image_tokens": item.image_tokens, "new_tokens": item.new_tokens,
        "seconds": round(item.seconds, 3), "finish_reason": item.finish_reason, "bands": item.bands,
        "longest_edge_px": item.longest_edge_px, "split": item.split, "attempts": item.attempts,
        "decoding": item.decoding,
    }


def check_output_dir(out_dir: Path) -> None:
    """Fail before any work if results could not be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".vlmcli-probe-")
        probe.close()
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot write here ({exc.strerror or exc})",
                          hint="choose another -o folder or fix its permissions") from None


class Sink:
    """Collects page results; streams them to stdout or writes one file per input when it is complete."""

    def __init__(self, fmt: OutputFormat, out_dir: Path | None, inputs: list[Path],
                 write: Callable[[str], None]) -> None:
        self.fmt, self.out_dir, self.inputs, self.write = fmt, out_dir, inputs, write
        self.written: list[Path] = []
        self._current: Path | None = None
        self._chunks: list[str] = []
        self._good_pages = 0
        self._any_output = False
        self._used_names: set[Path] = set()
        self._assigned: dict[Path, Path] = {}

    def add(self, item: PageResult | PageFailure) -> None:
        if self.out_dir is None:
            chunk = render(item, self.fmt, first_in_stream=not self._any_output)
            self._any_output = self._any_output or bool(chunk)
            self.write(chunk)
            return
        if item.source != self._current:
            self.flush()
            self._current = item.source
        chunk = render(item, self.fmt, first_in_stream=not self._chunks)
        if chunk:
            self._chunks.append(chunk)
        self._good_pages += isinstance(item, PageResult)

    def flush(self) -> None:
        """Write the file of the input in progress, if it has at least one good page."""
        if self._current is not None and self._good_pages:
            target = self._target(self._current)
            try:
                atomic_write(target, "".join(self._chunks))
            except OSError as exc:  # disk full, folder removed: the file is absent, never half-written
                raise OutputError(f"{target}: cannot write ({exc.strerror or exc})",
                                  hint="free space or fix the folder, then rerun with --resume") from None
            self.written.append(target)
        self._current, self._chunks, self._good_pages = None, [], 0

    def assign(self, documents: list[Path]) -> None:
        """Name the output files of `documents` now, in this order, whatever order they are completed in."""
        if self.out_dir is not None:
            for source in documents:
                if source not in self._assigned:
                    self._assigned[source] = self._target(source)

    def targets(self) -> list[Path]:
        """The output files named so far."""
        return list(self._assigned.values())

    def _target(self, source: Path) -> Path:
        if source in self._assigned:
            return self._assigned[source]
        relative = relative_name(source, self.inputs)
        target = self.out_dir / (relative + SUFFIXES[self.fmt])
        counter = 2
        while target in self._used_names:  # x/a.pdf and y/a.pdf given together
            target = self.out_dir / f"{relative}-{counter}{SUFFIXES[self.fmt]}"
            counter += 1
        self._used_names.add(target)
        return target


def relative_name(source: Path, inputs: list[Path]) -> str:
    """A document's path relative to the folder input it was found in, or its file name: its output file's
    name before the suffix, and its shard key."""
    for root in inputs:
        if root.is_dir() and source.is_relative_to(root):
            return source.relative_to(root).as_posix()
    return source.name
