"""Inputs → their pages: folders expanded, files checked, `--pages` parsed (Pillow, poppler). No pixels yet.

A `PageRef` names one page of one input: a PDF page, a frame of a multi-page
TIFF, or an image. `page_index` is 0-based (code); `page_number` is 1-based
(what users type and see).
"""

from __future__ import annotations

import errno
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from vlmcli.errors import InputError, UsageError
from vlmcli.inputs import images, pdfs
from vlmcli.specs import PdfSpec

DOCUMENT_SUFFIXES = images.IMAGE_SUFFIXES | {".pdf"}
_RANGE = re.compile(r"^\s*(\d+)?\s*(-)?\s*(\d+)?\s*$")


@dataclass(frozen=True)
class PageRef:
    source: Path
    page_index: int
    page_count: int
    is_pdf: bool

    @property
    def page_number(self) -> int:
        return self.page_index + 1


def parse_pages(text: str, page_count: int) -> list[int]:
    """'1-3,7' or '5-' (1-based page numbers, as typed) → sorted 0-based indexes, no duplicates."""
    indexes: set[int] = set()
    for part in text.split(","):
        match = _RANGE.match(part)
        if not part.strip() or not match or not (match.group(1) or match.group(3)):
            raise UsageError(f"--pages: '{part.strip()}' is not a page number or range",
                             hint="use page numbers from 1, e.g. --pages 1-3,7 or --pages 5-")
        first = int(match.group(1) or 1)
        last = (int(match.group(3)) if match.group(3) else page_count) if match.group(2) else first
        if first < 1 or last < first:
            raise UsageError(f"--pages: '{part.strip()}' is not a valid range", hint="ranges go up, from page 1")
        if last > page_count:
            raise UsageError(f"--pages: page {last} is past the end (the document has {page_count} pages)")
        indexes.update(range(first - 1, last))
    return sorted(indexes)


def discover(inputs: list[Path]) -> list[Path]:
    """Expand folders (recursively, sorted) into their images and PDFs; keep files as given."""
    found: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES)
            found.extend(files or [path])  # an empty folder stays, to be reported as such
        else:
            found.append(path)
    return found


def page_refs(path: Path, pages: str | None, pdf_spec: PdfSpec) -> list[PageRef]:
    """The pages of one input to process: all of them, or those `pages` names."""
    is_pdf, count = _open(path, pdf_spec)
    # --pages applies to documents (PDFs, multi-page TIFFs); a plain image is one page.
    indexes = parse_pages(pages, count) if pages and (is_pdf or count > 1) else list(range(count))
    return [PageRef(path, index, count, is_pdf) for index in indexes]


def page_ref(path: Path, page_number: int, pdf_spec: PdfSpec) -> PageRef:
    """One 1-based page of one input (a training example's image), checked like `page_refs` checks them."""
    is_pdf, count = _open(path, pdf_spec)
    if page_number > count:
        raise InputError(f"{path}: page {page_number} is past the end (the document has {count} pages)")
    return PageRef(path, page_number - 1, count, is_pdf)


def is_pdf(path: Path) -> bool:
    """True if the file starts like a PDF (magic bytes, not the suffix). Only regular files are opened: opening a
    FIFO would wait for a writer."""
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            return b"%PDF-" in handle.read(1024)
    except OSError:
        return False


def _open(path: Path, pdf_spec: PdfSpec) -> tuple[bool, int]:
    """Whether the input is a PDF, and its page count, after checking that it opens."""
    size_bytes = check_regular_file(path)
    if is_pdf(path):
        return True, pdfs.page_count(path, pdf_spec)
    if size_bytes == 0:
        raise InputError(f"{path}: is empty (0 bytes)", hint="the file was not written completely, or is a "
                                                              "placeholder; give the document itself")
    if path.suffix.lower() == ".pdf":
        raise InputError(f"{path}: is named .pdf but is not a PDF (it does not start with %PDF-)",
                         hint="the file may be damaged or another format renamed")
    # Decode once now, so a corrupt image is reported before the model loads (milliseconds, not a page's seconds).
    images.load_image(path)
    return False, images.count_frames(path)


def check_regular_file(path: Path) -> int:
    """Refuse what is not a readable regular file, each with its own message (a FIFO would block the run, a
    device never ends); the file's size in bytes."""
    try:
        status = path.stat()
    except FileNotFoundError:
        dangling = path.is_symlink()
        raise InputError(f"{path}: {'a symbolic link to a missing file' if dangling else 'no such file'}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: a loop of symbolic links", hint="point the link at a file") from None
        raise InputError(f"{path}: cannot be read ({exc.strerror})", hint="check the file's permissions") from None
    if stat.S_ISDIR(status.st_mode):
        raise InputError(f"{path}: is a directory with no images or PDFs")
    if not stat.S_ISREG(status.st_mode):
        raise InputError(f"{path}: not a regular file (a FIFO, device or socket)",
                         hint="give an image or PDF file; save a stream to a file first")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})", hint="check the file's permissions") from None
    return status.st_size
