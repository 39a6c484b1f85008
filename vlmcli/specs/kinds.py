"""The choices of the options that take one of a few values (stdlib only)."""

from __future__ import annotations

from enum import Enum


class Quant(str, Enum):
    none = "none"
    int8 = "8bit"
    nf4 = "4bit"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class DecodeDType(str, Enum):
    """The language model's weights for the token-by-token decode (CPU, float32 compute)."""

    same = "same"  # the compute dtype's (exact)
    float16 = "float16"  # half the bytes a decode step reads; lossy (vlmcli/model/levers/half_decode.py)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class KVCache(str, Enum):
    """How `generate` keeps keys and values: grown each step (dynamic) or preallocated (static)."""

    auto = "auto"  # static on a CPU, dynamic on a GPU (model/generate.py says why)
    static = "static"
    dynamic = "dynamic"


class OutputFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"
    html = "html"
    doctags = "doctags"  # a DocTags model's raw output
    pdf = "pdf"  # a searchable PDF: the page images with an invisible text layer
    hocr = "hocr"  # hOCR 1.2: words with boxes (from the first pass), one document per input
    alto = "alto"  # ALTO 4.2 XML: the same


class Engine(str, Enum):
    """What transcribes the pages: the model in this process, an OpenAI-compatible server, or vLLM in this process."""

    transformers = "transformers"
    server = "server"
    vllm = "vllm"


class AnswerFormat(str, Enum):
    text = "text"
    json = "json"


class PdfRenderer(str, Enum):
    """Who renders PDFs (and reads their text layers): poppler's tools, or PDFium (the pypdfium2 wheel, no system
    package)."""

    auto = "auto"  # poppler where its tools are on PATH, else PDFium
    poppler = "poppler"
    pdfium = "pdfium"



class FirstPass(str, Enum):
    """Who reads a scanned page first: a classic OCR engine (words with boxes, fast), or not."""

    auto = "auto"  # tesseract where its binary is on PATH, else rapidocr where it is installed, else as `model`
    tesseract = "tesseract"  # the system binary (Debian tesseract-ocr)
    rapidocr = "rapidocr"  # RapidOCR on onnxruntime, its models in its wheel (pip install 'vlmcli[rapidocr]')
    model = "model"  # no classic engine: `ask` has the model transcribe scans first; `ocr` places no words
    none = "none"  # no classic engine and no transcription: `ask` ranks scans without text
