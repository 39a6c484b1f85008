"""vlmcli as OCRmyPDF's OCR engine: `ocrmypdf --plugin vlmcli.ocrmypdf_plugin in.pdf out.pdf` (pip install
'vlmcli[ocrmypdf]'). OCRmyPDF keeps what it does best (rasterizing, deskew, PDF/A, optimisation, grafting the
text layer); each page image it hands over is read by the vision-language model, and the model's words are
placed on a first pass's word boxes (Tesseract or RapidOCR, as `vlmcli ocr -f pdf` does).

Built on OCRmyPDF 17's plugin interface: an `OcrEngine` whose `generate_ocr` returns the page as an `OcrElement`
tree (pixels of the page image), chosen by the `get_ocr_engine` hook (this plugin is registered after the
built-in Tesseract plugin, so it answers first). Options: --vlmcli-model, --vlmcli-first-pass,
--vlmcli-first-pass-lang, --vlmcli-max-new-tokens. Deskew and page orientation come from Tesseract where it is
installed (the model does not estimate them). OCRmyPDF runs pages in parallel workers and each loads the model:
pass --jobs 1 to keep one copy.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ocrmypdf import hookimpl
from ocrmypdf.hocrtransform import BoundingBox, OcrClass, OcrElement
from ocrmypdf.pluginspec import OcrEngine, OrientationConfidence
from pydantic import BaseModel

from vlmcli import __version__
from vlmcli.specs import DEFAULT_MODEL, OCR_MAX_NEW_TOKENS, FirstPass

_LOCK = threading.Lock()
_LOADED: dict = {}  # the model each worker process loaded, by its spec


class VlmcliOptions(BaseModel):
    """The plugin's options (OCRmyPDF reads them as --vlmcli-NAME into options.vlmcli.NAME)."""

    model: str = DEFAULT_MODEL
    first_pass: FirstPass = FirstPass.auto
    first_pass_lang: str = "eng"
    max_new_tokens: int = OCR_MAX_NEW_TOKENS


@hookimpl
def register_options():
    return {"vlmcli": VlmcliOptions}


@hookimpl
def add_options(parser):
    group = parser.add_argument_group("vlmcli", "A vision-language model as the OCR engine (vlmcli)")
    group.add_argument("--vlmcli-model", metavar="MODEL", help=f"checkpoint or hub id (default {DEFAULT_MODEL})")
    group.add_argument("--vlmcli-first-pass", choices=[choice.value for choice in FirstPass],
                       help="the classic OCR engine whose word boxes the model's words go on (default auto)")
    group.add_argument("--vlmcli-first-pass-lang", metavar="LANGS", help="Tesseract's languages (default eng)")
    group.add_argument("--vlmcli-max-new-tokens", type=int, metavar="N",
                       help=f"most tokens the model writes per page (default {OCR_MAX_NEW_TOKENS})")


class VlmcliOcrEngine(OcrEngine):
    """Pages read by a vision-language model, words placed on a first pass's boxes."""

    @staticmethod
    def version() -> str:
        return __version__

    @staticmethod
    def creator_tag(options) -> str:
        return f"vlmcli {__version__} ({_settings(options).model})"

    def __str__(self) -> str:
        return f"vlmcli {__version__}"

    @staticmethod
    def languages(options) -> set[str]:
        """Whatever OCRmyPDF is asked for: the model reads what it was trained on; -l goes to the first pass."""
        return set(getattr(options, "languages", None) or ["eng"])

    @staticmethod
    def get_orientation(input_file: Path, options) -> OrientationConfidence:
        tesseract = _tesseract()
        if tesseract is None:
            return OrientationConfidence(angle=0, confidence=0.0)
        return tesseract.get_orientation(input_file, engine_mode=None, timeout=options.tesseract.non_ocr_timeout)

    @staticmethod
    def get_deskew(input_file: Path, options) -> float:
        tesseract = _tesseract()
        if tesseract is None:
            return 0.0
        return tesseract.get_deskew(input_file, languages=list(options.languages or ["eng"]), engine_mode=None,
                                    timeout=options.tesseract.non_ocr_timeout)

    @staticmethod
    def supports_generate_ocr() -> bool:
        return True

    @staticmethod
    def generate_ocr(input_file: Path, options, page_number: int = 0) -> tuple[OcrElement, str]:
        text, words, size_px = transcribe_image(Path(input_file), _settings(options))
        return page_element(text, words, size_px, page_number), text

    @staticmethod
    def generate_hocr(input_file: Path, output_hocr: Path, output_text: Path, options) -> None:
        from vlmcli.words import hocr

        text, words, _ = transcribe_image(Path(input_file), _settings(options))
        Path(output_hocr).write_text(hocr.document(Path(input_file).name, [(1, words)], str(VlmcliOcrEngine())),
                                     encoding="utf-8")
        Path(output_text).write_text(text, encoding="utf-8")

    @staticmethod
    def generate_pdf(input_file: Path, output_pdf: Path, output_text: Path, options) -> None:
        raise NotImplementedError("vlmcli gives OCRmyPDF words with boxes, not a PDF: use --pdf-renderer auto "
                                  "(fpdf2), not sandwich")


@hookimpl
def get_ocr_engine(options):
    """This engine, unless OCRmyPDF was told --ocr-engine none (or another engine by name)."""
    if options is not None and getattr(options, "ocr_engine", "auto") not in ("auto", "vlmcli"):
        return None
    return VlmcliOcrEngine()


def transcribe_image(path: Path, settings: VlmcliOptions):
    """The model's transcription of one page image, its words on the first pass's boxes (PDF points of the
    image at its stated resolution), and the image's size in pixels."""
    from vlmcli.inputs.documents import page_refs
    from vlmcli.inputs.firstpass import engines
    from vlmcli.inputs.pages import page_image_at
    from vlmcli.pipeline.page import prepare_page, transcribe_prepared
    from vlmcli.pipeline.results import PageFailure
    from vlmcli.prompts import OCR_PROMPT
    from vlmcli.specs import FirstPassSpec, RunSpec
    from vlmcli.words import PageWords
    from vlmcli.words.align import align

    run = RunSpec.from_options(model=settings.model, max_new_tokens=settings.max_new_tokens)
    ref = page_refs(path, None, run.pdf)[0]
    loaded = _model(run)
    result = transcribe_prepared(loaded, ref, prepare_page(loaded, ref, OCR_PROMPT, run), run)
    if isinstance(result, PageFailure):
        raise result.error  # OCRmyPDF reports the page's error and stops
    image, geometry = page_image_at(ref, 72.0, run.pdf)
    engine = engines.resolve(settings.first_pass)
    spec = FirstPassSpec(engine=settings.first_pass, languages=settings.first_pass_lang)
    if engine is None:
        words = PageWords(geometry.width_pt, geometry.height_pt, (), "none", geometry.dpi)
    else:
        words = align(result.text, engines.read_words(engine, image, geometry.width_pt, geometry.height_pt, spec))
    return result.text, words, (image.width, image.height)


def page_element(text: str, words, size_px: tuple[int, int], page_number: int) -> OcrElement:
    """The page as OCRmyPDF's tree: lines of words in pixels. Without boxes (no first pass, or nothing in common
    with it), each line of the text spans the page's width, one under the other."""
    from vlmcli.words.align import model_tokens

    width_px, height_px = size_px
    scale = width_px / words.width_pt
    page = OcrElement(ocr_class=OcrClass.PAGE, bbox=BoundingBox(0, 0, width_px, height_px),
                      dpi=words.dpi, page_number=page_number)
    if words.words:
        for line in words.lines():
            elements = [_element(OcrClass.WORD, [v * scale for v in w.bbox_pt], w.text, w.confidence) for w in line]
            page.children.append(_line(elements))
        return page
    tokens = model_tokens(text)
    lines = sorted({token.line for token in tokens})
    step = height_px / max(len(lines), 1) / 1.5
    for row, line_number in enumerate(lines):
        line_words = [token.text for token in tokens if token.line == line_number]
        widths = [len(word) + 1 for word in line_words]
        x, unit, top = 0.0, width_px / sum(widths), row * step * 1.5
        elements = []
        for word, width in zip(line_words, widths):
            elements.append(_element(OcrClass.WORD, [x, top, x + (width - 1) * unit, top + step], word, None))
            x += width * unit
        page.children.append(_line(elements))
    return page


def _element(ocr_class: str, box: list[float], text: str, confidence: float | None) -> OcrElement:
    x0, y0, x1, y1 = box
    return OcrElement(ocr_class=ocr_class, bbox=BoundingBox(x0, y0, max(x1, x0), max(y1, y0)), text=text,
                      confidence=confidence)


def _line(words: list[OcrElement]) -> OcrElement:
    box = BoundingBox(min(w.bbox.left for w in words), min(w.bbox.top for w in words),
                      max(w.bbox.right for w in words), max(w.bbox.bottom for w in words))
    return OcrElement(ocr_class=OcrClass.LINE, bbox=box, children=words)


def _settings(options) -> VlmcliOptions:
    found = getattr(options, "vlmcli", None) if options is not None else None
    return found if isinstance(found, VlmcliOptions) else VlmcliOptions()


def _model(run):
    """The checkpoint `run` names, loaded once per worker process."""
    from vlmcli import model

    with _LOCK:
        if run.model not in _LOADED:
            _LOADED[run.model] = model.load(run.model, run.split)
        return _LOADED[run.model]


def _tesseract():
    """OCRmyPDF's own Tesseract calls where the binary is installed, for deskew and orientation; else None."""
    from vlmcli.inputs.firstpass import tesseract

    if not tesseract.installed():
        return None
    from ocrmypdf._exec import tesseract as ocrmypdf_tesseract

    return ocrmypdf_tesseract
