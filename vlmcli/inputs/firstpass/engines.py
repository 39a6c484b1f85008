"""Which first pass runs (`--first-pass`), and one page image read into words in PDF points (PNG to the engine).

`auto` takes Tesseract where its binary is on PATH, else RapidOCR where it is
installed, else none (the model's own path). An engine named on the command
line that is not installed is a DependencyError with its install hint.
"""

from __future__ import annotations

import io

from PIL import Image

from vlmcli.errors import DependencyError
from vlmcli.inputs.firstpass import rapidocr, tesseract
from vlmcli.inputs.firstpass.tesseract import PixelWord
from vlmcli.specs import FirstPass, FirstPassSpec
from vlmcli.words import PageWords, Word

ENGINES = (FirstPass.tesseract.value, FirstPass.rapidocr.value)


def resolve(choice: FirstPass) -> str | None:
    """The engine `choice` means on this machine ("tesseract", "rapidocr"), or None for no classic engine."""
    if choice is FirstPass.tesseract and not tesseract.installed():
        raise DependencyError("--first-pass tesseract: Tesseract is not installed or not on PATH",
                              hint=tesseract.INSTALL_HINT)
    if choice is FirstPass.rapidocr and not rapidocr.installed():
        raise DependencyError("--first-pass rapidocr: RapidOCR is not installed", hint=rapidocr.INSTALL_HINT)
    if choice in (FirstPass.tesseract, FirstPass.rapidocr):
        return choice.value
    if choice is FirstPass.auto:
        return "tesseract" if tesseract.installed() else "rapidocr" if rapidocr.installed() else None
    return None


def version(engine: str) -> str:
    """The engine's name and version, as its results are cached under and as hOCR names it."""
    return tesseract.version() if engine == "tesseract" else rapidocr.version()


def read_words(engine: str, image: Image.Image, width_pt: float, height_pt: float,
               spec: FirstPassSpec) -> PageWords:
    """The words of a page image whose size in points is `width_pt` x `height_pt`, in reading order."""
    dpi = image.width * 72.0 / width_pt
    buffer = io.BytesIO()
    image.convert("L").save(buffer, "PNG", dpi=(dpi, dpi))  # grey is all an engine reads, and a third of the bytes
    png = buffer.getvalue()
    if engine == "tesseract":
        found = tesseract.read(png, spec.languages, spec.timeout_s)
    else:
        found = rapidocr.read(png, spec.timeout_s)
    return in_points(found, image.width, image.height, width_pt, height_pt, version(engine))


def in_points(found: list[PixelWord], width_px: int, height_px: int, width_pt: float, height_pt: float,
              engine: str) -> PageWords:
    """Pixel words as `Word`s in points, their lines numbered from 0 in reading order."""
    scale_x, scale_y = width_pt / width_px, height_pt / height_px
    line_numbers: dict[tuple[int, ...], int] = {}
    words = []
    for word in found:
        line = line_numbers.setdefault(word.line, len(line_numbers))
        x0, y0, x1, y1 = word.box_px
        words.append(Word(word.text, (x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y), word.confidence, line))
    return PageWords(width_pt, height_pt, tuple(words), engine, width_px * 72.0 / width_pt)
