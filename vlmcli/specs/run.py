"""Frozen specs: what to load, how a page becomes model input, how to decode (stdlib only).

The defaults of every spec field live here; so do the token budgets of each command
(`OCR_MAX_NEW_TOKENS` and the others). `RunSpec.from_options` and `ModelSpec.from_options` are the one place
where options (specs/options.py) become specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vlmcli.catalogue import BY_ALIAS, CHECKPOINTS
from vlmcli.specs.kinds import (
    DecodeDType,
    Device,
    DType,
    Engine,
    FirstPass,
    KVCache,
    PdfRenderer,
    Quant,
)

DEFAULT_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"
MODEL_ENV_VAR = "VLMCLI_MODEL"
# Short names for the checkpoints vlmcli knows (catalogue.py); `--model` takes either.
MODEL_ALIASES = {checkpoint.alias: checkpoint.repo for checkpoint in CHECKPOINTS}

OCR_MAX_NEW_TOKENS = 1024  # per page: a dense page's transcription
DOCTAGS_MAX_NEW_TOKENS = 8192  # per page from a DocTags model: markup and boxes cost tokens (Docling's own limit)
# A DocTags table repeats its cell tags legitimately (a row of equal cells is a short unit repeated): a loop must
# cover this many tokens before the guard ends it, an eighth of the page's budget.
DOCTAGS_REPETITION_MIN_TOKENS = 1024
ANSWER_MAX_NEW_TOKENS = 512  # per answer: `ask` and `eval`
TRAINING_EVAL_MAX_NEW_TOKENS = 256  # per example in `finetune --eval-data`, run before and after every stage

# A looping page is decoded once more with this penalty: greedy still (so a resumed
# run repeats it exactly), but a repeated unit becomes less likely than the way out.
LOOP_RETRY_PENALTY = 1.3


@dataclass(frozen=True)
class ModelSpec:
    """Which checkpoint to load and how."""

    model_id: str = DEFAULT_MODEL  # hub id or local directory
    revision: str | None = None
    quantize: Quant = Quant.none
    dtype: DType = DType.auto
    decode_dtype: DecodeDType = DecodeDType.same
    device: Device = Device.auto
    adapter: Path | None = None  # a PEFT LoRA adapter directory
    offline: bool = False
    trust_remote_code: bool = False  # run Python code shipped with the checkpoint (--trust-remote-code)
    allow_pickle: bool = False  # accept .bin weights, read with torch's weights-only unpickler (--allow-pickle)
    family: str | None = None  # the model family's profile (model/families); None: recognised from its files

    @classmethod
    def from_options(cls, *, base: ModelSpec | None = None, model: str | None = None, revision: str | None = None,
                     quantize: Quant | None = None, dtype: DType = DType.auto, device: Device = Device.auto,
                     adapter: Path | None = None, offline: bool = False, trust_remote_code: bool = False,
                     allow_pickle: bool = False, decode_dtype: DecodeDType = DecodeDType.same,
                     family: str | None = None) -> ModelSpec:
        """The spec of command-line options: a checkpoint, revision or quantization given wins over `base`'s
        (an earlier training run's); the other settings are this run's own. An alias names its family too
        (olmOCR-2 and Nanonets-OCR2 are both Qwen2.5-VL checkpoints): `family` given wins."""
        base = base or cls()
        known = BY_ALIAS.get(model) if model else None
        return cls(model_id=known.repo if known else model or base.model_id,
                   revision=revision or base.revision,
                   quantize=quantize or base.quantize, dtype=dtype, decode_dtype=decode_dtype, device=device,
                   adapter=adapter, offline=offline, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle,
                   family=family or (known.family if known else None if model else base.family))


@dataclass(frozen=True)
class SplitSpec:
    """How a page becomes model input.

    `split` and `longest_edge_px` map onto the processor's own settings
    (None keeps the checkpoint's). `bands` lets vlmcli cut pages larger than
    the model's input into overlapping horizontal bands, top to bottom.
    """

    split: bool | None = None
    longest_edge_px: int | None = None
    bands: bool = True
    band_overlap: float = 0.12  # fraction of a band's height shared with the next band


@dataclass(frozen=True)
class GenerationSpec:
    """Decoding settings: greedy unless told otherwise."""

    max_new_tokens: int = OCR_MAX_NEW_TOKENS
    min_new_tokens: int = 0  # benchmarks force equal lengths with min = max; users leave it at 0
    repetition_min_tokens: int = 64  # a loop must cover this many tokens to stop generation
    repetition_min_repeats: int = 4  # ...and repeat its unit at least this often
    repetition_penalty: float = 1.0  # 1.0 = off; a looping page is retried once with LOOP_RETRY_PENALTY
    max_time_s: float | None = None  # wall-clock cap of one generate call (what is left of --page-timeout)
    kv_cache: KVCache = KVCache.auto
    temperature: float = 0.0  # 0: greedy (what vlmcli's own commands use); above: sampling (the server's clients)
    top_p: float = 1.0  # nucleus sampling, with a temperature above 0
    stop: tuple[str, ...] = ()  # the text ends before the first of these (the server's `stop`)


# A PDF page is rendered for the model at the DPI that fits the processor's input edge, but at most at this, unless
# a resolution is asked for (--longest-edge, a stage's longest_edge_px): a pixel budget without a default edge
# (Qwen2.5-VL, Qwen3-VL, Nanonets-OCR2: an edge of 3584 to 4096 px) would render an A4 page at over 300 dpi, about
# 12k visual tokens, minutes a page on a CPU. 200 dpi keeps small print legible (the first pass renders at it too).
MAX_PDF_DPI = 200.0


@dataclass(frozen=True)
class PdfSpec:
    """How PDFs are opened and rendered."""

    password: str | None = None
    timeout_s: float = 120  # per poppler call (--page-timeout sets it); a hung rasterizer must not hang the run
    renderer: PdfRenderer = PdfRenderer.auto
    max_dpi: float | None = MAX_PDF_DPI  # None: as many as the model's input edge asks (see `pdf_max_dpi`)


def pdf_max_dpi(longest_edge_px: int | None) -> float | None:
    """The most DPI a PDF page is rendered at: MAX_PDF_DPI, or no cap where a longest edge was asked for (it may
    ask for more)."""
    return None if longest_edge_px else MAX_PDF_DPI


FIRST_PASS_DPI = 200.0  # a PDF page is rendered at this for the first pass (a scan image is read as it is)


@dataclass(frozen=True)
class FirstPassSpec:
    """The classic OCR engine that reads scanned pages for ranking and for word boxes."""

    engine: FirstPass = FirstPass.auto
    languages: str = "eng"  # Tesseract's -l (eng+deu: both); RapidOCR's wheel reads Latin and Chinese
    dpi: float = FIRST_PASS_DPI
    timeout_s: float = 120  # per page; the engine's process group is killed after it

    @classmethod
    def from_options(cls, *, first_pass: FirstPass = FirstPass.auto, first_pass_lang: str | None = None,
                     page_timeout: float | None = None) -> FirstPassSpec:
        """The first pass the options describe; `--page-timeout` bounds the engine's call on a page too."""
        return cls(engine=first_pass, **({"languages": first_pass_lang} if first_pass_lang else {}),
                   **({"timeout_s": page_timeout} if page_timeout else {}))

DEFAULT_SERVER_CONCURRENCY = 4  # pages in flight to an engine's server: enough to keep a GPU server's batch full
API_KEY_ENV_VAR = "VLMCLI_API_KEY"  # `vlmcli serve` and `--engine server` read the key from here too


@dataclass(frozen=True)
class EngineSpec:
    """Who reads the pages (`--engine`); for a server, where and how hard to push it."""

    kind: Engine = Engine.transformers
    server_url: str | None = None  # the server's base URL, up to and including /v1
    api_key: str | None = field(default=None, repr=False)  # never printed, never part of a fingerprint
    concurrency: int = DEFAULT_SERVER_CONCURRENCY  # pages sent at once (server)
    attempts: int = 5  # tries per request on 429, 5xx, timeouts and lost connections (server)


DEFAULT_TOP_K = 3  # pages `ask` reads with the model when it searches a whole document


@dataclass(frozen=True)
class SearchSpec:
    """How `ask` answers over whole documents: which pages it may search, how many it reads, how strict it is."""

    pages: str | None = None  # --pages, 1-based, applied to every PDF
    top_k: int = DEFAULT_TOP_K
    strict: bool = False  # an answer not found in the page text becomes "not found"
    first_pass: FirstPassSpec = field(default_factory=FirstPassSpec)  # who reads pages without a text layer first


@dataclass(frozen=True)
class PageTranscription:
    """What a model family asks of a page's transcription (model/families): its token budget, how long a loop must
    run before the guard ends it, and whether pages are transcribed whole (no bands)."""

    max_new_tokens: int = OCR_MAX_NEW_TOKENS
    repetition_min_tokens: int | None = None
    whole_pages: bool = False


DOCTAGS_TRANSCRIPTION = PageTranscription(DOCTAGS_MAX_NEW_TOKENS, DOCTAGS_REPETITION_MIN_TOKENS, whole_pages=True)


@dataclass(frozen=True)
class RunSpec:
    """Everything about how pages become answers, shared by ask, ocr and eval."""

    model: ModelSpec = field(default_factory=ModelSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    pdf: PdfSpec = field(default_factory=PdfSpec)
    page_timeout_s: float | None = None  # generation of one page, all bands and retries (poppler: pdf.timeout_s)
    batch_size: int = 1  # ocr: pages per generate call (each band a row); more pays on a GPU
    cache: bool = True  # read and write the page cache (vlmcli/cache); --no-cache turns it off
    engine: EngineSpec = field(default_factory=EngineSpec)

    @classmethod
    def from_options(cls, *, base: ModelSpec | None = None, model: str | None = None, revision: str | None = None,
                     quantize: Quant | None = None, dtype: DType = DType.auto, device: Device = Device.auto,
                     adapter: Path | None = None, decode_dtype: DecodeDType = DecodeDType.same,
                     offline: bool = False, trust_remote_code: bool = False, allow_pickle: bool = False,
                     max_new_tokens: int | None = None, default_max_new_tokens: int = OCR_MAX_NEW_TOKENS,
                     min_new_tokens: int = 0, repetition_min_tokens: int | None = None,
                     kv_cache: KVCache = KVCache.auto, split: bool | None = None, longest_edge: int | None = None,
                     bands: bool = True, password: str | None = None, page_timeout: float | None = None,
                     batch_size: int = 1, cache: bool = True,
                     pdf_renderer: PdfRenderer = PdfRenderer.auto, transcription: PageTranscription | None = None,
                     family: str | None = None,
                     engine: Engine = Engine.transformers, server_url: str | None = None,
                     api_key: str | None = None, concurrency: int = DEFAULT_SERVER_CONCURRENCY) -> RunSpec:
        """The run the command-line options describe (keyword names are the options'); `None` = not given.

        The model options go through `ModelSpec.from_options` (with `base`). `--page-timeout` bounds each
        PDF renderer's call as well as a page's generation. `transcription` is the model family's
        (model/families): a DocTags checkpoint, say, transcribes a page whole, as it was trained to, with DocTags'
        token budget and a loop guard that lets tables repeat their cells."""
        pdf = PdfSpec(password=password, renderer=pdf_renderer, max_dpi=pdf_max_dpi(longest_edge),
                      **({"timeout_s": page_timeout} if page_timeout else {}))
        transcription = transcription or PageTranscription()
        if default_max_new_tokens == OCR_MAX_NEW_TOKENS:  # a page's transcription, not an answer
            default_max_new_tokens = transcription.max_new_tokens
        repetition_min_tokens = repetition_min_tokens or transcription.repetition_min_tokens
        bands = bands and not transcription.whole_pages
        guard = {"repetition_min_tokens": repetition_min_tokens} if repetition_min_tokens else {}
        return cls(
            model=ModelSpec.from_options(base=base, model=model, revision=revision, quantize=quantize, dtype=dtype,
                                         decode_dtype=decode_dtype, device=device, adapter=adapter, offline=offline,
                                         trust_remote_code=trust_remote_code, allow_pickle=allow_pickle,
                                         family=family),
            split=SplitSpec(split=split, longest_edge_px=longest_edge, bands=bands),
            generation=GenerationSpec(max_new_tokens=max_new_tokens or default_max_new_tokens,
                                      min_new_tokens=min_new_tokens, kv_cache=kv_cache, **guard),
            pdf=pdf, page_timeout_s=page_timeout, batch_size=batch_size, cache=cache,
            engine=EngineSpec(kind=engine, server_url=server_url, api_key=api_key, concurrency=concurrency),
        )
