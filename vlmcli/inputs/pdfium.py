"""PDFium (the pypdfium2 wheel), wrapped like poppler.py: page count, page size, one page rendered or its text
layer read at a time, and the printed page labels. For machines without poppler (Windows, macOS without
Homebrew, slim containers); no system package needed.

Every call runs pdfium_worker.py in a child process with the same timeout as a
poppler call, killed with its group after it, so a PDFium crash or hang fails
one page, not the run. What the child returns is checked as poppler's output is.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from PIL import Image

from vlmcli.errors import DependencyError, EncryptedPdfError, InputError, PageTimeoutError, RasterizerError
from vlmcli.inputs import images
from vlmcli.inputs.child import TimedOut, run_child, signal_name
from vlmcli.inputs.poppler import ppm_size
from vlmcli.specs import PdfSpec

INSTALL_HINT = "pip install pypdfium2, or install poppler (apt-get install poppler-utils, brew install poppler)"
_REPAIR_HINT = "the file may be damaged; try repairing it with qpdf or re-exporting it"
WORKER = [sys.executable, "-m", "vlmcli.inputs.pdfium_worker"]


def installed() -> bool:
    """Whether pypdfium2 can be imported (checked without importing it)."""
    return importlib.util.find_spec("pypdfium2") is not None


def page_count(path: Path, spec: PdfSpec) -> int:
    count = int(_run(path, "count", [], spec, "reading the PDF"))
    if count < 1:
        raise InputError(f"{path}: PDF has no pages")
    return count


def page_size_in(path: Path, page_number: int, spec: PdfSpec) -> tuple[float, float]:
    """(width, height) of a 1-based page in inches, as it will be rendered (rotation applied)."""
    output = _run(path, "size", [str(page_number)], spec, f"reading the size of page {page_number}")
    width_in, height_in = (float(value) for value in output.split())
    if not (width_in > 0 and height_in > 0):
        raise InputError(f"{path}: page {page_number} has an empty MediaBox", hint=_REPAIR_HINT)
    return width_in, height_in


def render_page(path: Path, page_number: int, dpi: float, spec: PdfSpec) -> Image.Image:
    """Render one 1-based page at `dpi` into an RGB image."""
    output = _run(path, "render", [str(page_number), f"{dpi:.3f}"], spec, f"rendering page {page_number}")
    try:
        page = images.load_image_bytes(output, f"{path} page {page_number}")
    except InputError as exc:
        raise RasterizerError(f"{path}: PDFium's output for page {page_number} is not an image ({exc.message})",
                              hint=_REPAIR_HINT) from None
    if ppm_size(output) != len(output):
        raise RasterizerError(f"{path}: PDFium returned {len(output)} bytes for page {page_number}, not one page",
                              hint=_REPAIR_HINT)
    return page


def page_text(path: Path, page_number: int, spec: PdfSpec) -> str:
    """The text layer of one 1-based page; empty for a scanned page."""
    return _run(path, "text", [str(page_number)], spec, f"reading the text of page {page_number}").decode(
        "utf-8", "replace")


def page_texts(path: Path, page_numbers: list[int], spec: PdfSpec) -> list[str]:
    """The text layers of several 1-based pages in one child process (starting one costs more than reading a
    page's text); if that child fails, page by page, so only a page that fails itself raises."""
    try:
        output = _run(path, "texts", [str(number) for number in page_numbers], spec,
                      f"reading the text of {len(page_numbers)} pages")
        return [str(text) for text in json.loads(output)]
    except (RasterizerError, PageTimeoutError):
        if len(page_numbers) == 1:
            raise
        return [page_text(path, number, spec) for number in page_numbers]


def page_labels(path: Path, spec: PdfSpec) -> list[str]:
    """The printed label of every page (`/PageLabels`), '' where the PDF defines none."""
    labels = json.loads(_run(path, "labels", [], spec, "reading the page labels"))
    return [str(label) for label in labels]


def _run(path: Path, operation: str, args: list[str], spec: PdfSpec, doing: str) -> bytes:
    if not installed():
        raise DependencyError("PDFium (pypdfium2) is not installed", hint=INSTALL_HINT)
    argv = [*WORKER, operation, str(path), *args]
    try:
        finished = run_child(argv, spec.timeout_s, stdin=json.dumps({"password": spec.password}).encode())
    except TimedOut:
        raise PageTimeoutError(f"{path}: PDFium took over {spec.timeout_s:g} s {doing}; stopped it",
                               hint="the PDF may be damaged or hostile; raise --page-timeout if it is just large"
                               ) from None
    if finished.returncode != 0:
        raise _classify(path, finished.returncode, finished.stderr.decode("utf-8", "replace"))
    return finished.stdout


def _classify(path: Path, returncode: int, stderr: str) -> Exception:
    """Map a failed PDFium child onto vlmcli's errors."""
    if not path.exists():
        return InputError(f"{path}: no such file")
    if returncode < 0:
        return RasterizerError(f"{path}: PDFium crashed ({signal_name(returncode)})", hint=_REPAIR_HINT)
    lines = stderr.strip().splitlines()
    kind, _, detail = (lines[-1] if lines else f"failed: exit status {returncode}").partition(": ")
    if kind == "password":
        return EncryptedPdfError(f"{path}: PDF is encrypted and the password is missing or wrong",
                                 hint="pass the password with --password")
    if kind == "unreadable":
        return InputError(f"{path}: not a readable PDF ({detail})", hint=_REPAIR_HINT)
    if kind == "too_large":
        return InputError(f"{path}: page is too large to render ({detail})", hint=_REPAIR_HINT)
    return RasterizerError(f"{path}: PDFium failed ({detail or kind})", hint=_REPAIR_HINT)
