"""Rasterize PDF pages one at a time with poppler, through pdf2image.

poppler runs as a child process, so a crash or hang in its parsers stays out
of vlmcli and is bounded by a timeout. pdf2image ignores pdftoppm's exit
status, so every render checks it got exactly the one page it asked for.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from vlmcli.config import PdfSpec
from vlmcli.errors import DependencyError, EncryptedPdfError, InputError
from vlmcli.images import to_rgb

POINTS_PER_INCH = 72.0
_POPPLER_HINT = "install poppler: apt-get install poppler-utils (Debian/Ubuntu) or brew install poppler (macOS)"


def is_pdf(path: Path) -> bool:
    """True if the file starts like a PDF (magic bytes, not the suffix)."""
    try:
        with open(path, "rb") as handle:
            return b"%PDF-" in handle.read(1024)
    except OSError:
        return False


def page_count(path: Path, spec: PdfSpec) -> int:
    """Number of pages, after checking the PDF opens (and the password works)."""
    pages = int(_pdfinfo(path, spec).get("Pages", 0))
    if pages < 1:
        raise InputError(f"{path}: PDF has no pages")
    return pages


def page_size_in(path: Path, page_number: int, spec: PdfSpec) -> tuple[float, float]:
    """(width, height) of a 1-based page in inches, as it will be rendered (rotation applied)."""
    info = _pdfinfo(path, spec, page_number)
    size = next((value for key, value in info.items() if key.endswith(" size")), None)
    if size is None:
        raise InputError(f"{path}: page {page_number} has no size")
    width_pt, _, height_pt = size.split()[:3]
    rotation = next((int(value) for key, value in info.items() if key.endswith(" rot")), 0)
    width_in, height_in = float(width_pt) / POINTS_PER_INCH, float(height_pt) / POINTS_PER_INCH
    return (height_in, width_in) if rotation % 180 == 90 else (width_in, height_in)


def render_page(path: Path, page_number: int, dpi: float, spec: PdfSpec) -> Image.Image:
    """Render one 1-based page at `dpi` into an RGB image."""
    from pdf2image import convert_from_path
    from pdf2image.exceptions import PDFPopplerTimeoutError

    try:
        images = convert_from_path(
            path, dpi=round(dpi, 3), first_page=page_number, last_page=page_number,
            userpw=spec.password, timeout=spec.timeout_s,
        )
    except PDFPopplerTimeoutError:
        raise InputError(f"{path}: rendering page {page_number} took over {spec.timeout_s} s") from None
    except Exception as exc:  # noqa: BLE001 - pdf2image raises poppler failures under many types
        raise _classify(path, exc) from None
    if len(images) != 1:
        raise InputError(f"{path}: poppler returned {len(images)} images for page {page_number}",
                         hint="the PDF may be damaged; try repairing it with qpdf")
    return to_rgb(images[0])


def _pdfinfo(path: Path, spec: PdfSpec, page_number: int | None = None) -> dict:
    from pdf2image import pdfinfo_from_path

    try:
        return pdfinfo_from_path(
            str(path), userpw=spec.password, timeout=spec.timeout_s,
            first_page=page_number, last_page=page_number,
        )
    except Exception as exc:  # noqa: BLE001 - see _classify
        raise _classify(path, exc) from None


def _classify(path: Path, exc: Exception) -> Exception:
    """Map pdf2image's exceptions (poppler's stderr, mostly) onto vlmcli's errors."""
    from pdf2image.exceptions import PDFInfoNotInstalledError, PDFPopplerTimeoutError

    text = str(exc)
    if not path.exists():
        return InputError(f"{path}: no such file")
    if isinstance(exc, PDFInfoNotInstalledError):
        return DependencyError("poppler (pdfinfo/pdftoppm) is not installed or not on PATH", hint=_POPPLER_HINT)
    if isinstance(exc, PDFPopplerTimeoutError):
        return InputError(f"{path}: poppler timed out reading the PDF", hint="the PDF may be damaged or hostile")
    if "Incorrect password" in text:
        return EncryptedPdfError(f"{path}: PDF is encrypted and the password is missing or wrong",
                                 hint="pass the password with --password")
    detail = text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
    return InputError(f"{path}: not a readable PDF ({detail})",
                      hint="the file may be damaged; try repairing it with qpdf or re-exporting it")

