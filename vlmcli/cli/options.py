"""Typer option aliases shared by the commands: each defined once, with its help text.

Defaults are `None` ("not given") wherever a spec in `vlmcli/specs.py` owns the default.
`with_run_options` gives a command the options that make a `RunSpec` (ask and ocr).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer._click import types as click_types

from vlmcli.errors import UsageError

from vlmcli.specs import (
    API_KEY_ENV_VAR,
    BATCH_SIZE_RANGE,
    DEFAULT_MODEL,
    DEFAULT_SERVER_CONCURRENCY,
    LONGEST_EDGE_RANGE,
    MAX_NEW_TOKENS_RANGE,
    PAGE_TIMEOUT_RANGE,
    RAY_ACTOR_CPUS_RANGE,
    RAY_ACTOR_GPUS_RANGE,
    RAY_ACTORS_RANGE,
    SHARD_COUNT_RANGE,
    TOP_K_RANGE,
    MODEL_ALIASES,
    MODEL_ENV_VAR,
    AnswerFormat,
    DecodeDType,
    Device,
    DType,
    Engine,
    FirstPass,
    KVCache,
    OutputFormat,
    PdfRenderer,
    Quant,
    Range,
    RunSpec,
)

MODEL = "Model"
IMAGES = "Splitting and resolution"


class _Number(click_types.ParamType):
    """An int or a float within a `Range`, checked while the command line is parsed (click's own ranges let
    inf and nan through, and have no upper end unless given one)."""

    def __init__(self, accepted: Range, kind: type) -> None:
        self.accepted, self.kind = accepted, kind
        self.name = "integer" if kind is int else "float"

    def convert(self, value, param, ctx):
        if isinstance(value, self.kind) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = self.kind(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a{'n integer' if self.kind is int else ' number'}", param, ctx)
        if not self.accepted.accepts(number):
            self.fail(f"{value} is out of range (needs {self.accepted.describe()})", param, ctx)
        return number

    def get_metavar(self, param, ctx=None) -> str:
        return self.name.upper()


def number(accepted: Range, kind: type = int) -> _Number:
    """The click type of a numeric option that takes `accepted` values (`typer.Option(click_type=...)`)."""
    return _Number(accepted, kind)


ModelOpt = Annotated[str, typer.Option(
    "--model", "-m", envvar=MODEL_ENV_VAR, rich_help_panel=MODEL,
    help="Hub id or local checkpoint directory (Idefics2, Idefics3 or SmolVLM), or a short name: "
         + ", ".join(f"{alias} ({model_id})" for alias, model_id in MODEL_ALIASES.items()) + ".")]
FamilyOpt = Annotated[Optional[str], typer.Option(
    "--family", rich_help_panel=MODEL, show_default="recognised from the checkpoint's files",
    help="The model family's recipe to read the checkpoint with (`vlmcli models` lists them): for a fine-tune of one "
         "architecture that another family shares (olmOCR-2 and Nanonets-OCR2 are both Qwen2.5-VL).")]
RevisionOpt = Annotated[Optional[str], typer.Option(
    rich_help_panel=MODEL, help="Branch, tag or commit of the hub checkpoint; pin a commit for reproducible runs.")]
QuantizeOpt = Annotated[Quant, typer.Option(
    rich_help_panel=MODEL,
    help="Quantize weights with bitsandbytes at load time (4bit = NF4 + double quantization). On CPUs without "
         "AVX-512 it saves memory, not time: bitsandbytes' layers are slower than float32 there.")]
DTypeOpt = Annotated[DType, typer.Option(
    rich_help_panel=MODEL, help="Compute dtype. auto: bfloat16 on GPUs, float32 on CPUs without native bf16.")]
DecodeDTypeOpt = Annotated[DecodeDType, typer.Option(
    rich_help_panel=MODEL,
    help="The language model's weights for decoding, on a CPU computing in float32. float16: half the bytes each "
         "new token reads, so faster decoding; lossy (11-bit layer inputs and outputs), token agreement in the docs "
         "(speed and memory).")]
DeviceOpt = Annotated[Device, typer.Option(rich_help_panel=MODEL, help="Where to run the model.")]
AdapterOpt = Annotated[Optional[Path], typer.Option(readable=False,
    rich_help_panel=MODEL, help="A PEFT LoRA adapter directory to apply on top of the model.")]
OfflineOpt = Annotated[bool, typer.Option(
    "--offline", rich_help_panel=MODEL, help="Never use the network; the model must be cached or local.")]
TrustRemoteCodeOpt = Annotated[bool, typer.Option(
    "--trust-remote-code", rich_help_panel=MODEL,
    help="Run Python code shipped with the checkpoint (refused by default; read it and pin --revision first).")]
AllowPickleOpt = Annotated[bool, typer.Option(
    "--allow-pickle", rich_help_panel=MODEL,
    help="Accept .bin (pickle) weights, read with torch's weights-only unpickler (refused by default).")]
MaxNewTokensOpt = Annotated[Optional[int], typer.Option(
    click_type=number(MAX_NEW_TOKENS_RANGE), rich_help_panel=MODEL, help="Most tokens to generate per page or answer.")]
KVCacheOpt = Annotated[KVCache, typer.Option(
    "--kv-cache", rich_help_panel=MODEL,
    help="auto: static on CPUs (faster decoding), dynamic on GPUs. static on a GPU compiles the decode step for "
         "each batch shape first, then decodes faster: for long runs.")]

SplitOpt = Annotated[Optional[bool], typer.Option(
    "--split/--no-split", rich_help_panel=IMAGES, show_default="checkpoint's setting",
    help="Cut each image into sub-images (Idefics3/SmolVLM tile grid, Idefics2 4 crops) so small text stays legible.")]
LongestEdgeOpt = Annotated[Optional[int], typer.Option(
    click_type=number(LONGEST_EDGE_RANGE), rich_help_panel=IMAGES, show_default="checkpoint's setting",
    help="Resolution: the longest image edge in px the processor works at (SmolVLM: multiples of 512; "
         "fewer px = fewer visual tokens).")]
BandsOpt = Annotated[bool, typer.Option(
    "--bands/--no-bands", rich_help_panel=IMAGES,
    help="Cut pages larger than the model's input (long receipts, posters, 300-dpi scans) into overlapping bands.")]
PasswordOpt = Annotated[Optional[str], typer.Option(help="Password of encrypted PDFs.")]
PdfRendererOpt = Annotated[PdfRenderer, typer.Option(
    "--pdf-renderer", help="Who reads PDFs. auto: poppler where it is installed, else PDFium (pypdfium2).")]
CacheOpt = Annotated[bool, typer.Option(
    "--cache/--no-cache",
    help="Keep and reuse page texts and image features in the page cache (see `vlmcli cache info`).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Report tokens and time per page on stderr.")]

def _not_blank(value: str | None) -> str | None:
    """A page range given as "" would otherwise mean every page."""
    if value is not None and not value.strip():
        raise typer.BadParameter("is empty; give page numbers from 1, e.g. 1-3,7 or 5-")
    return value


PagesOpt = Annotated[Optional[str], typer.Option(
    callback=_not_blank, help="PDF pages to read, 1-based: e.g. 1-3,7 or 5- (default: all).")]
OutputDirOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", readable=False, help="Write one file per input into this folder instead of stdout.")]
FormatOpt = Annotated[OutputFormat, typer.Option(
    "--format", "-f",
    help="text (pages separated by form feeds), markdown, json (JSON Lines, one record per page; with a first "
         "pass, each word's box), html, pdf (a searchable PDF per input, with -o; words where they are on the page "
         "with a first pass), hocr, alto (words with boxes), doctags (a DocTags model's raw output). With a "
         "DocTags model, markdown, html, json and text are converted from its DocTags (pip install "
         "'vlmcli[docling]').")]
TablesOpt = Annotated[Optional[Path], typer.Option(
    "--tables",
    readable=False, help="With a DocTags model: write every table as CSV into this folder (<input>.p<page>.t<k>.csv).")]
PromptOpt = Annotated[Optional[str], typer.Option(help="Your own instruction instead of the transcription preset.")]
HandwritingOpt = Annotated[bool, typer.Option("--handwriting", help="Use the handwriting transcription preset.")]
TaskOpt = Annotated[Optional[str], typer.Option(
    "--task", help="One of the model card's tasks instead of a whole page's transcription (PaddleOCR-VL: ocr, "
                   "table, formula, chart, and for 1.5 spotting, seal; GLM-OCR: text, formula, table).")]

SCANS = "Scanned pages"
FirstPassOpt = Annotated[FirstPass, typer.Option(
    "--first-pass", rich_help_panel=SCANS,
    help="A classic OCR engine reads scanned pages first, far faster than the model: ask ranks them on its words, and "
         "ocr puts the model's words on its boxes (-f json, pdf, hocr, alto). auto: tesseract if installed, else "
         "rapidocr (pip install 'vlmcli\\[rapidocr]'), else model. model: ask has the model transcribe every "
         "scanned page first; ocr places no words. none: ask ranks scanned pages without text.")]
FirstPassLangOpt = Annotated[Optional[str], typer.Option(
    "--first-pass-lang", rich_help_panel=SCANS, show_default="eng",
    help="Tesseract's languages, e.g. eng+deu (each needs its pack: apt-get install tesseract-ocr-deu).")]

SEARCH = "Questions over whole documents"
SearchPagesOpt = Annotated[Optional[str], typer.Option(
    callback=_not_blank, rich_help_panel=SEARCH,
    help="Search only these pages of each PDF, 1-based: e.g. 3-7 or 1-3,9 (default: all).")]
TopKOpt = Annotated[int, typer.Option(
    "--top-k", click_type=number(TOP_K_RANGE), rich_help_panel=SEARCH,
    help="Most pages the model reads, best-ranked first.")]
StrictOpt = Annotated[bool, typer.Option(
    "--strict", rich_help_panel=SEARCH,
    help="Say \"not found\" rather than give an answer the page text does not contain.")]
AnswerFormatOpt = Annotated[AnswerFormat, typer.Option(
    "--format", "-f", help="text (the answer and its citation) or json (one object: answer, citations, pages ranked "
                           "and read, tokens, seconds).")]

BATCH = "Batch and resume"
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", rich_help_panel=BATCH,
    help="Skip the pages the manifest in the -o folder records as done with the same input, model and settings.")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", rich_help_panel=BATCH,
    help="Write into an -o folder that holds an earlier run's manifest without --resume (the old manifest is kept "
         "as a backup), or files vlmcli did not write. Outputs never replace inputs, --force or not.")]
PageTimeoutOpt = Annotated[Optional[float], typer.Option(
    click_type=number(PAGE_TIMEOUT_RANGE, float), rich_help_panel=BATCH,
    show_default="none for generation; 120 s per poppler call",
    help="Seconds one page may take: each poppler call, and its generation (all bands and retries together).")]
BatchSizeOpt = Annotated[int, typer.Option(
    "--batch-size", click_type=number(BATCH_SIZE_RANGE), rich_help_panel=BATCH,
    help="Pages per generate call. More pays on a GPU (pages per second); on a CPU it gains little.")]
FailFastOpt = Annotated[bool, typer.Option(
    "--fail-fast", rich_help_panel=BATCH, help="Stop at the first failed page or input, with that error's exit code.")]
FailureReportOpt = Annotated[Optional[Path], typer.Option(readable=False,
    rich_help_panel=BATCH, show_default="OUTPUT/vlmcli-failures.jsonl with -o",
    help="JSON Lines of failed pages: input, page_number, category, message, attempts, exit_code.")]


ENGINE = "Engine"
EngineOpt = Annotated[Engine, typer.Option(
    "--engine", rich_help_panel=ENGINE,
    help="Who reads the pages: transformers (the model in this process), server (an OpenAI-compatible server: "
         "vlmcli serve, vLLM, ...; --server-url) or vllm (vLLM's engine in this process, pip install vllm). "
         "Rendering, bands, resume and the outputs stay here.")]
ServerUrlOpt = Annotated[Optional[str], typer.Option(
    "--server-url", envvar="VLMCLI_SERVER_URL", rich_help_panel=ENGINE, metavar="URL",
    help="The server of --engine server, up to /v1: e.g. http://127.0.0.1:8000/v1.")]
ApiKeyOpt = Annotated[Optional[str], typer.Option(
    "--api-key", envvar=API_KEY_ENV_VAR, rich_help_panel=ENGINE, show_default=False,
    help=f"The server's API key (or set {API_KEY_ENV_VAR}: a key on the command line is visible to ps).")]
ConcurrencyOpt = Annotated[int, typer.Option(
    "--concurrency", min=1, rich_help_panel=ENGINE,
    help="Pages sent to the server at once (--engine server); 429s and 5xx are retried with backoff.")]

# The options that make a RunSpec, in --help order, with their defaults (RunSpec.from_options's keywords).
_RUN_OPTIONS = (
    ("model", ModelOpt, DEFAULT_MODEL), ("family", FamilyOpt, None), ("revision", RevisionOpt, None), ("quantize", QuantizeOpt, Quant.none),
    ("dtype", DTypeOpt, DType.auto), ("decode_dtype", DecodeDTypeOpt, DecodeDType.same),
    ("device", DeviceOpt, Device.auto), ("adapter", AdapterOpt, None),
    ("offline", OfflineOpt, False), ("trust_remote_code", TrustRemoteCodeOpt, False),
    ("allow_pickle", AllowPickleOpt, False), ("max_new_tokens", MaxNewTokensOpt, None),
    ("kv_cache", KVCacheOpt, KVCache.auto), ("split", SplitOpt, None), ("longest_edge", LongestEdgeOpt, None),
    ("bands", BandsOpt, True), ("password", PasswordOpt, None), ("pdf_renderer", PdfRendererOpt, PdfRenderer.auto),
    ("cache", CacheOpt, True),
)
_ENGINE_OPTIONS = (
    ("engine", EngineOpt, Engine.transformers), ("server_url", ServerUrlOpt, None), ("api_key", ApiKeyOpt, None),
    ("concurrency", ConcurrencyOpt, DEFAULT_SERVER_CONCURRENCY),
)


def with_run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command` with the run and engine options added after its own; it receives them as one dict,
    `run_options`."""
    return _with_options(command, _RUN_OPTIONS + _ENGINE_OPTIONS)


def with_model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`with_run_options` without the engine's (a command that runs the model itself: serve)."""
    return _with_options(command, _RUN_OPTIONS)


def _with_options(command: Callable[..., Any], options: tuple) -> Callable[..., Any]:
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "run_options"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=alias)
              for name, alias, default in options]

    @functools.wraps(command)
    def with_options(**given: Any) -> Any:
        run_options = {name: given.pop(name) for name, _, _ in options}
        return command(**given, run_options=run_options)

    with_options.__signature__ = inspect.Signature([*own, *shared])  # what Typer reads the options from
    return with_options


def run_spec(run_options: dict[str, Any], **more: Any):
    """The run the options describe, with the defaults of the checkpoint's family (its token budget, loop guard,
    whole pages), which its config and tokenizer files tell before the model loads; and that family."""
    import dataclasses

    from vlmcli.model.profile import read_profile

    spec = RunSpec.from_options(**run_options)
    # Another engine's checkpoint may live elsewhere only: its files are read where they are here, never fetched.
    local_only = spec.engine.kind is not Engine.transformers
    profile = read_profile(dataclasses.replace(spec.model, offline=True) if local_only else spec.model)
    asked, context = run_options.get("max_new_tokens"), profile.context_tokens
    if asked is not None and context is not None and asked >= context:
        raise UsageError(f"--max-new-tokens {asked} is beyond the model's context of {context} tokens",
                         hint=f"ask for fewer than {context}: the prompt and its image take part of the context")
    return RunSpec.from_options(**run_options, **more, reading=profile.family.reading), profile.family
SCALE = "Job arrays and clusters"
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", metavar="K/N", rich_help_panel=SCALE,
    show_default="from SLURM_ARRAY_TASK_ID/COUNT, or JOB_COMPLETION_INDEX with --shard-count",
    help="Read shard K of N (1-based): a fixed share of the documents, by a hash of each one's path, so N "
         "processes into one -o folder read every document once. A rerun with another N resumes from all manifests.")]
ShardCountOpt = Annotated[Optional[int], typer.Option(
    "--shard-count", click_type=number(SHARD_COUNT_RANGE), rich_help_panel=SCALE,
    help="N for a Kubernetes Indexed Job (its completions); the shard is JOB_COMPLETION_INDEX + 1.")]
RayOpt = Annotated[Optional[str], typer.Option(
    "--ray", metavar="auto|local|ADDRESS", rich_help_panel=SCALE,
    help="Read the pages on a Ray cluster (pip install 'vlmcli\\[ray]'): auto joins the running cluster, local "
         "starts one on this machine, or a cluster address. Needs -o; the inputs must be at the same path on "
         "every node.")]
RayActorsOpt = Annotated[Optional[int], typer.Option(
    "--ray-actors", click_type=number(RAY_ACTORS_RANGE), rich_help_panel=SCALE,
    show_default="one per GPU of the cluster, else 1",
    help="Copies of the model (Ray actors) reading pages at once.")]
RayActorCpusOpt = Annotated[Optional[float], typer.Option(
    "--ray-actor-cpus", click_type=number(RAY_ACTOR_CPUS_RANGE, float), rich_help_panel=SCALE, show_default="1",
    help="CPUs each actor reserves; its whole part (at least 1) is the actor's torch threads. Leave CPUs free "
         "for Ray's own tasks: fractions are allowed.")]
RayActorGpusOpt = Annotated[Optional[float], typer.Option(
    "--ray-actor-gpus", click_type=number(RAY_ACTOR_GPUS_RANGE, float), rich_help_panel=SCALE,
    show_default="1 if the cluster has GPUs, else 0",
    help="GPUs each actor reserves.")]
