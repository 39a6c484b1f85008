"""The run options of `ask`, `ocr` and `serve`, defined once (stdlib only).

Each field of `RunOptions` is one option: its name is `RunSpec.from_options`'s keyword, its default the option's,
and its metadata (`Option`) says everything else: the flags, the help text, the --help panel, the accepted range,
the environment variable, and whether it decides a page's text (so the resume fingerprint must change with it:
tests/test_run_options.py checks each). The CLI builds its Typer options from these fields (cli/options.py), and
the documentation's option table is rendered from them (benchmarks/docs_tables.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from vlmcli.catalogue import CHECKPOINTS
from vlmcli.specs.kinds import DecodeDType, Device, DType, Engine, KVCache, PdfRenderer, Quant
from vlmcli.specs.limits import LONGEST_EDGE_RANGE, MAX_NEW_TOKENS_RANGE, Range
from vlmcli.specs.run import API_KEY_ENV_VAR, DEFAULT_MODEL, DEFAULT_SERVER_CONCURRENCY, MODEL_ENV_VAR

MODEL, IMAGES, PDF, ENGINE = "Model", "Splitting and resolution", "PDFs and the page cache", "Engines"


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]  # "--model", "-m"; a boolean pair as "--split/--no-split"
    help: str
    panel: str | None = MODEL  # the --help panel; None: the command's own options
    accepts: Range | None = None  # a numeric option's range, checked while parsing
    envvar: str | None = None
    shown_default: str | None = None  # what --help shows for a default of None
    text: bool = True  # decides a page's text: the resume manifest's fingerprint changes with it
    why_not_text: str = ""  # for an option that does not: why a page's text stays the same
    engine: bool = False  # an option of the engine that reads the pages (not `serve`'s own)
    metavar: str | None = None  # what --help shows for the value, where its type's name says too little


def _option(default, *flags: str, help: str, **more) -> object:
    return field(default=default, metadata={"option": Option(tuple(flags), help, **more)})


_ALIASES = ", ".join(checkpoint.alias for checkpoint in CHECKPOINTS)


@dataclass(frozen=True)
class RunOptions:
    model: str = _option(
        DEFAULT_MODEL, "--model", "-m", envvar=MODEL_ENV_VAR,
        help=f"Hub id or local checkpoint folder, or a short name (`vlmcli models`): {_ALIASES}.")
    family: str | None = _option(
        None, "--family", shown_default="recognised from the checkpoint's files",
        help="The model family's recipe to read the checkpoint with (`vlmcli models` lists them), for a fine-tune of "
             "an architecture that several families share (olmOCR-2 and Nanonets-OCR2 are both Qwen2.5-VL).")
    revision: str | None = _option(
        None, "--revision", help="Branch, tag or commit of the hub checkpoint; pin a commit for reproducible runs.")
    quantize: Quant = _option(
        Quant.none, "--quantize",
        help="Quantize weights with bitsandbytes at load time (4bit = NF4 + double quantization). On CPUs without "
             "AVX-512 it saves memory, not time: bitsandbytes' layers are slower than float32 there.")
    dtype: DType = _option(
        DType.auto, "--dtype", help="Compute dtype. auto: bfloat16 on GPUs, float32 on CPUs without native bf16.")
    decode_dtype: DecodeDType = _option(
        DecodeDType.same, "--decode-dtype",
        help="The language model's weights for decoding, on a CPU computing in float32. float16: half the bytes each "
             "new token reads, so faster decoding; lossy (11-bit layer inputs and outputs), token agreement in the "
             "docs (speed and memory).")
    device: Device = _option(Device.auto, "--device", help="Where to run the model.")
    adapter: Path | None = _option(
        None, "--adapter", help="A PEFT LoRA adapter folder to apply on top of the model.")
    offline: bool = _option(
        False, "--offline", help="Never use the network; the model must be cached or local.", text=False,
        why_not_text="where the checkpoint comes from, not which one (its files are in the fingerprint)")
    trust_remote_code: bool = _option(
        False, "--trust-remote-code", text=False, why_not_text="a permission: the checkpoint decides the text",
        help="Run Python code shipped with the checkpoint (refused by default; read it and pin --revision first).")
    allow_pickle: bool = _option(
        False, "--allow-pickle", text=False, why_not_text="a permission: the weights decide the text",
        help="Accept .bin (pickle) weights, read with torch's weights-only unpickler (refused by default).")
    max_new_tokens: int | None = _option(
        None, "--max-new-tokens", accepts=MAX_NEW_TOKENS_RANGE, shown_default="the family's budget",
        help="Most tokens to generate per page or answer.")
    kv_cache: KVCache = _option(
        KVCache.auto, "--kv-cache",
        help="auto: static on CPUs (faster decoding), dynamic on GPUs. static on a GPU compiles the decode step for "
             "each batch shape first, then decodes faster: for long runs.")
    split: bool | None = _option(
        None, "--split/--no-split", panel=IMAGES, shown_default="checkpoint's setting",
        help="Cut each image into sub-images (Idefics3/SmolVLM tile grid, Idefics2 4 crops, DeepSeek tiles) so "
             "small text stays legible.")
    longest_edge: int | None = _option(
        None, "--longest-edge", panel=IMAGES, accepts=LONGEST_EDGE_RANGE, shown_default="checkpoint's setting",
        help="Resolution: the longest image edge in px the processor works at (SmolVLM: multiples of 512; a pixel "
             "budget of that edge squared for Qwen-style processors; fewer px = fewer visual tokens). PDF pages are "
             "rendered to fit it, at most at 200 dpi unless this option is given.")
    bands: bool = _option(
        True, "--bands/--no-bands", panel=IMAGES,
        help="Cut pages larger than the model's input (long receipts, posters, 300-dpi scans) into overlapping "
             "bands.")
    password: str | None = _option(
        None, "--password", panel=PDF, text=False, why_not_text="opens the file; the pixels are the same",
        help="Password of encrypted PDFs (read by PDFium, never put on a command line).")
    pdf_renderer: PdfRenderer = _option(
        PdfRenderer.auto, "--pdf-renderer", panel=PDF,
        help="Who renders PDFs and reads their text layers. auto: poppler where it is installed, else PDFium "
             "(pypdfium2).")
    cache: bool = _option(
        True, "--cache/--no-cache", panel=PDF, text=False, why_not_text="where a text is kept, not what it is",
        help="Keep and reuse page texts and image features in the page cache (see `vlmcli cache info`).")
    engine: Engine = _option(
        Engine.transformers, "--engine", panel=ENGINE, engine=True,
        help="Who reads the pages: transformers in this process, an OpenAI-compatible server (--server-url), or "
             "vLLM in this process (pip install vllm).")
    server_url: str | None = _option(
        None, "--server-url", panel=ENGINE, engine=True, text=False,
        why_not_text="where the pages go: the model is named by --model, the engine by --engine",
        help="The server's base URL, up to /v1 (e.g. http://gpu-box:8000/v1), for --engine server.")
    api_key: str | None = _option(
        None, "--api-key", panel=ENGINE, engine=True, envvar=API_KEY_ENV_VAR, text=False,
        why_not_text="a credential", help=f"The server's API key (or {API_KEY_ENV_VAR}, which ps does not show).")
    concurrency: int = _option(
        DEFAULT_SERVER_CONCURRENCY, "--concurrency", panel=ENGINE, engine=True, accepts=Range(1, 1024), text=False,
        why_not_text="how many pages are in flight; each is read alone",
        help="Pages sent to the server at once (--engine server); 429s and 5xx are retried with backoff.")


def run_option_fields(*, engine: bool = True) -> list:
    """RunOptions' fields with their Option, in --help order; without the engine's for `serve`."""
    return [item for item in fields(RunOptions) if engine or not item.metadata["option"].engine]


def option_of(name: str) -> Option:
    return next(item.metadata["option"] for item in fields(RunOptions) if item.name == name)
