"""The PDFium side of vlmcli/inputs/pdfium.py: one operation on one PDF, run in a child process (pypdfium2).

    python -m vlmcli.inputs.pdfium_worker count|labels PATH
    python -m vlmcli.inputs.pdfium_worker size|text PATH PAGE_NUMBER
    python -m vlmcli.inputs.pdfium_worker render PATH PAGE_NUMBER DPI
    python -m vlmcli.inputs.pdfium_worker texts PATH PAGE_NUMBER...     (a JSON list, one text per page)

The password comes as JSON on stdin, never on the command line. Results go to
stdout (a PPM image for `render`, UTF-8 text or JSON otherwise); a failure is
exit status 3 and one line `KIND: detail` on stderr, where KIND is password,
unreadable, no_page, too_large or failed. A crash or a hang in PDFium ends this
process only; the parent kills it after its timeout.
"""

from __future__ import annotations

import json
import sys

POINTS_PER_INCH = 72.0
MAX_RENDER_PIXELS = 89_478_485  # Pillow's decompression-bomb limit, checked before PDFium draws anything
_PASSWORD_ERROR = 4  # FPDF_ERR_PASSWORD


class Refused(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")


def main(argv: list[str]) -> int:
    import pypdfium2 as pdfium

    operation, path, *numbers = argv
    password = json.loads(sys.stdin.read() or "{}").get("password")
    try:
        document = _open(pdfium, path, password)
        sys.stdout.buffer.write(_answer(document, operation, numbers))
    except Refused as refused:
        print(refused, file=sys.stderr)
        return 3
    except pdfium.PdfiumError as error:
        print(f"failed: {error}", file=sys.stderr)
        return 3
    return 0


def _open(pdfium, path: str, password: str | None):
    try:
        return pdfium.PdfDocument(path, password=password)
    except pdfium.PdfiumError as error:
        kind = "password" if getattr(error, "err_code", None) == _PASSWORD_ERROR else "unreadable"
        raise Refused(kind, str(error)) from None


def _answer(document, operation: str, numbers: list[str]) -> bytes:
    if operation == "count":
        return str(len(document)).encode()
    if operation == "labels":
        return json.dumps([document.get_page_label(index) for index in range(len(document))]).encode()
    if operation == "texts":
        return json.dumps([_text(_page(document, int(number))) for number in numbers]).encode()
    page = _page(document, int(numbers[0]))
    width_pt, height_pt = page.get_size()  # after the page's /Rotate, as it is drawn
    if operation == "size":
        return f"{width_pt / POINTS_PER_INCH} {height_pt / POINTS_PER_INCH}".encode()
    if operation == "text":
        return _text(page).encode("utf-8", "replace")
    if operation == "render":
        return _render(page, width_pt, height_pt, float(numbers[1]))
    raise ValueError(f"unknown operation {operation!r}")


def _page(document, page_number: int):
    if not 1 <= page_number <= len(document):
        raise Refused("no_page", f"page {page_number} of {len(document)}")
    return document[page_number - 1]


def _text(page) -> str:
    return page.get_textpage().get_text_range().replace("\r\n", "\n")


def _render(page, width_pt: float, height_pt: float, dpi: float) -> bytes:
    import io

    scale = dpi / POINTS_PER_INCH
    pixels = round(width_pt * scale) * round(height_pt * scale)
    if pixels > MAX_RENDER_PIXELS:
        raise Refused("too_large", f"{pixels:,} pixels at {dpi:g} dpi")
    image = page.render(scale=scale, may_draw_forms=True).to_pil().convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PPM")
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
