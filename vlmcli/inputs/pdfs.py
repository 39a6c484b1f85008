"""PDFs through poppler or PDFium: the one place that picks the renderer (stdlib; the backends do the work).

`auto` uses poppler where its tools are on PATH (the default, and what every
earlier run used), else PDFium from the pypdfium2 wheel, so PDFs open on machines
without poppler. The printed page labels (`/PageLabels`) come from PDFium, since
poppler's tools do not print them.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from PIL import Image

from vlmcli.errors import DependencyError, UsageError
from vlmcli.inputs import pdfium, poppler
from vlmcli.specs import PdfRenderer, PdfSpec


def renderer(spec: PdfSpec) -> str:
    """The renderer `spec` resolves to on this machine: "poppler" or "pdfium".

    A password goes to PDFium only (through its child's stdin): poppler's tools take it on their command line,
    where `ps` shows it to every user of the machine."""
    if spec.renderer is PdfRenderer.auto:
        if spec.password is not None and pdfium.installed():
            return PdfRenderer.pdfium.value
        return PdfRenderer.poppler.value if poppler.installed() else PdfRenderer.pdfium.value
    if spec.renderer is PdfRenderer.poppler and spec.password is not None:
        raise UsageError("--pdf-renderer poppler cannot take --password safely: poppler's tools read it from "
                         "their command line, which other users of the machine can see",
                         hint="leave --pdf-renderer at auto (PDFium reads encrypted PDFs), or decrypt the file "
                              "first (qpdf --decrypt)")
    return spec.renderer.value


def page_count(path: Path, spec: PdfSpec) -> int:
    """Number of pages, after checking the PDF opens (and the password works)."""
    return _backend(spec).page_count(path, spec)


def page_size_in(path: Path, page_number: int, spec: PdfSpec) -> tuple[float, float]:
    """(width, height) of a 1-based page in inches, as it will be rendered (rotation applied)."""
    return _backend(spec).page_size_in(path, page_number, spec)


def render_page(path: Path, page_number: int, dpi: float, spec: PdfSpec) -> Image.Image:
    """Render one 1-based page at `dpi` into an RGB image."""
    return _backend(spec).render_page(path, page_number, dpi, spec)


def page_texts(path: Path, page_numbers: list[int], spec: PdfSpec) -> list[str]:
    """The text layers of these 1-based pages (empty for a scan): one pdftotext call per page, or one PDFium child
    for all of them."""
    if _backend(spec) is pdfium:
        return pdfium.page_texts(path, page_numbers, spec)
    return [poppler.page_text(path, number, spec) for number in page_numbers]


def page_labels(path: Path, spec: PdfSpec) -> list[str]:
    """Every page's printed label ('' where none is defined); all '' without pypdfium2."""
    return pdfium.page_labels(path, spec) if pdfium.installed() else []


def _backend(spec: PdfSpec) -> ModuleType:
    if spec.renderer is PdfRenderer.auto and not poppler.installed() and not pdfium.installed():
        raise DependencyError("no PDF renderer: poppler's tools are not on PATH and pypdfium2 is not installed",
                              hint=pdfium.INSTALL_HINT)
    return poppler if renderer(spec) == PdfRenderer.poppler.value else pdfium
