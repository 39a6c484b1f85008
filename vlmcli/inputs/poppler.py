"""poppler's command-line tools, wrapped: page count, page size, one page rendered or its text layer read at a time.

poppler runs as a child process in its own process group, so a crash or hang
in its parsers stays out of vlmcli: every call has a timeout, after which the
whole group is killed. Nothing poppler says is taken on trust: the exit status
is checked (pdf2image ignores it), and the bytes it writes must decode, through
the same guarded loader as image files, into the one page that was asked for.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from vlmcli.errors import (
    DependencyError,
    EncryptedPdfError,
    InputError,
    PageTimeoutError,
    RasterizerError,
)
from vlmcli.inputs import images
from vlmcli.inputs.child import TimedOut, run_child, signal_name
from vlmcli.specs import PdfSpec

POINTS_PER_INCH = 72.0
TOOLS = ("pdfinfo", "pdftoppm", "pdftotext")
_POPPLER_HINT = "install poppler: apt-get install poppler-utils (Debian/Ubuntu) or brew install poppler (macOS)"
_REPAIR_HINT = "the file may be damaged; try repairing it with qpdf or re-exporting it"


def page_count(path: Path, spec: PdfSpec) -> int:
    """Number of pages, after checking the PDF opens (and the password works)."""
    pages = _pdfinfo(path, spec).get("Pages", "0")
    if not pages.isdigit() or int(pages) < 1:
        raise InputError(f"{path}: PDF has no pages")
    return int(pages)


def page_size_in(path: Path, page_number: int, spec: PdfSpec) -> tuple[float, float]:
    """(width, height) of a 1-based page in inches, as it will be rendered (rotation applied)."""
    info = _pdfinfo(path, spec, page_number)
    size = next((value for key, value in info.items() if key.endswith(" size")), None)
    try:
        width_pt, _, height_pt = size.split()[:3]
        width_in, height_in = float(width_pt) / POINTS_PER_INCH, float(height_pt) / POINTS_PER_INCH
    except (AttributeError, ValueError):
        raise RasterizerError(f"{path}: pdfinfo gave no usable size for page {page_number} ({size!r})",
                              hint=_REPAIR_HINT) from None
    if not (width_in > 0 and height_in > 0):
        raise InputError(f"{path}: page {page_number} has an empty MediaBox", hint=_REPAIR_HINT)
    rotation = next((value for key, value in info.items() if key.endswith(" rot")), "0")
    turned = rotation.strip().lstrip("-").isdigit() and int(rotation) % 180 == 90
    return (height_in, width_in) if turned else (width_in, height_in)


def render_page(path: Path, page_number: int, dpi: float, spec: PdfSpec) -> Image.Image:
    """Render one 1-based page at `dpi` into an RGB image."""
    args = ["-r", f"{dpi:.3f}", "-f", str(page_number), "-l", str(page_number), *_password_args(spec), str(path)]
    output = _run(path, "pdftoppm", args, spec, f"rendering page {page_number}")
    if not output:
        raise RasterizerError(f"{path}: pdftoppm returned no image for page {page_number}", hint=_REPAIR_HINT)
    try:
        # Several pages or trailing bytes in one PPM stream are not what was asked for:
        # Pillow reads only the first image, so compare its size with the stream.
        page = images.load_image_bytes(output, f"{path} page {page_number}")
    except InputError as exc:
        raise RasterizerError(f"{path}: pdftoppm output for page {page_number} is not an image ({exc.message})",
                              hint=_REPAIR_HINT) from None
    expected_bytes = ppm_size(output)
    if expected_bytes is not None and expected_bytes != len(output):
        raise RasterizerError(f"{path}: pdftoppm returned {len(output)} bytes for page {page_number}, "
                              f"one page is {expected_bytes}", hint=_REPAIR_HINT)
    return page


def page_text(path: Path, page_number: int, spec: PdfSpec) -> str:
    """The text layer of one 1-based page, in reading order (pdftotext); empty for a scanned page."""
    args = ["-f", str(page_number), "-l", str(page_number), "-enc", "UTF-8", *_password_args(spec), str(path), "-"]
    output = _run(path, "pdftotext", args, spec, f"reading the text of page {page_number}")
    return output.decode("utf-8", "replace").rstrip("\f")


def installed() -> bool:
    """Whether poppler's tools are all on PATH."""
    return all(shutil.which(tool) for tool in TOOLS)


def _pdfinfo(path: Path, spec: PdfSpec, page_number: int | None = None) -> dict[str, str]:
    pages = ["-f", str(page_number), "-l", str(page_number)] if page_number else []
    output = _run(path, "pdfinfo", [*pages, *_password_args(spec), str(path)], spec, "reading the PDF")
    info: dict[str, str] = {}
    for line in output.decode("utf-8", "replace").splitlines():
        key, colon, value = line.partition(":")
        if colon and key:
            info[key.strip()] = value.strip()
    return info


def _password_args(spec: PdfSpec) -> list[str]:
    """No password ever goes to poppler: its tools take it on their command line, which `ps` shows to every user
    (inputs/pdfs.py sends encrypted PDFs to PDFium, which reads it from stdin)."""
    if spec.password is not None:
        raise DependencyError("reading a PDF with --password needs pypdfium2 (poppler would show the password to "
                              "other users of the machine)", hint="pip install pypdfium2")
    return []


def _run(path: Path, tool: str, args: list[str], spec: PdfSpec, doing: str) -> bytes:
    """Run a poppler tool; its stdout, or a typed error. The process group dies on timeout."""
    executable = shutil.which(tool)
    if executable is None:
        raise DependencyError(f"poppler ({tool}) is not installed or not on PATH", hint=_POPPLER_HINT)
    try:
        finished = run_child([executable, *args], spec.timeout_s)
    except OSError as exc:
        raise DependencyError(f"poppler ({tool}) cannot be run ({exc.strerror or exc})", hint=_POPPLER_HINT) from None
    except TimedOut:
        raise PageTimeoutError(f"{path}: {tool} took over {spec.timeout_s:g} s {doing}; stopped it",
                               hint="the PDF may be damaged or hostile; raise --page-timeout if it is just large"
                               ) from None
    if finished.returncode != 0:
        raise _classify(path, tool, finished.returncode, finished.stderr.decode("utf-8", "replace"))
    return finished.stdout


def _classify(path: Path, tool: str, returncode: int, stderr: str) -> Exception:
    """Map a failed poppler run onto vlmcli's errors."""
    if not path.exists():
        return InputError(f"{path}: no such file")
    if "Incorrect password" in stderr:
        return EncryptedPdfError(f"{path}: PDF is encrypted and the password is missing or wrong",
                                 hint="pass the password with --password")
    if "the last page (0)" in stderr:  # pdfinfo's way of saying the document has no pages
        return InputError(f"{path}: PDF has no pages")
    if returncode < 0:
        return RasterizerError(f"{path}: {tool} crashed ({signal_name(returncode)})", hint=_REPAIR_HINT)
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {returncode}"
    if tool == "pdfinfo":
        return InputError(f"{path}: not a readable PDF ({detail})", hint=_REPAIR_HINT)
    return RasterizerError(f"{path}: {tool} failed ({detail})", hint=_REPAIR_HINT)


def ppm_size(data: bytes) -> int | None:
    """Bytes of one binary PPM/PGM image as its header announces it, or None if the header is odd."""
    fields: list[bytes] = []
    position = 0
    while len(fields) < 4 and position < min(len(data), 256):
        while position < len(data) and data[position:position + 1].isspace():
            position += 1
        if data[position:position + 1] == b"#":
            position = data.find(b"\n", position) + 1 or len(data)
            continue
        end = position
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        fields.append(data[position:end])
        position = end
    if len(fields) < 4 or fields[0] not in (b"P5", b"P6") or not all(f.isdigit() for f in fields[1:]):
        return None
    width, height, maxval = (int(f) for f in fields[1:])
    channels = 3 if fields[0] == b"P6" else 1
    return position + 1 + width * height * channels * (2 if maxval > 255 else 1)
