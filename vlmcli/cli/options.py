"""Typer option aliases shared by the commands: each defined once, with its help text.

The run options (model, decoding, resolution, PDFs, engine) are built from `RunOptions` (specs/options.py), where
each is defined once; `with_run_options` gives a command all of them. Defaults are `None` ("not given") wherever a
spec in `vlmcli/specs` owns the default.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vlmcli.errors import UsageError
from vlmcli.specs import (
    BATCH_SIZE_RANGE,
    PAGE_TIMEOUT_RANGE,
    RAY_ACTOR_CPUS_RANGE,
    RAY_ACTOR_GPUS_RANGE,
    RAY_ACTORS_RANGE,
    SHARD_COUNT_RANGE,
    TOP_K_RANGE,
    AnswerFormat,
    Engine,
    FirstPass,
    Option,
    OutputFormat,
    Range,
    RunOptions,
    RunSpec,
    run_option_fields,
)

MODEL = "Model"
IMAGES = "Splitting and resolution"


class _Number:
    """Parses an int or a float within a `Range` while the command line is parsed (click's own ranges let inf and
    nan through, and have no upper end unless given one); a mistake is a usage error naming the option."""

    def __init__(self, accepted: Range, kind: type) -> None:
        self.accepted, self.kind = accepted, kind
        self.__name__ = "integer" if kind is int else "float"

    def __call__(self, value: Any) -> Any:
        if isinstance(value, self.kind) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = self.kind(str(value).strip())
            except ValueError:
                raise typer.BadParameter(
                    f"{value!r} is not a{'n integer' if self.kind is int else ' number'}") from None
        if not self.accepted.accepts(number):
            raise typer.BadParameter(f"{value} is out of range (needs {self.accepted.describe()})")
        return number


def number(accepted: Range, kind: type = int) -> dict[str, Any]:
    """The Typer option arguments of a numeric option that takes `accepted` values (`typer.Option(**number(...))`):
    its parser and its metavar."""
    return {"parser": _Number(accepted, kind), "metavar": "INTEGER" if kind is int else "FLOAT"}


def run_option(name: str) -> Any:
    """The Typer option of a RunOptions field, as an `Annotated` type a command's parameter takes."""
    return field_option(RunOptions, name)


def field_option(options_class: type, name: str) -> Any:
    """The Typer option of the field `name` of a dataclass of options (RunOptions, FinetuneOptions)."""
    found = next(item for item in dataclasses.fields(options_class) if item.name == name)
    return typer_option(found, typing.get_type_hints(options_class)[name])


def typer_option(item: dataclasses.Field, kind: Any) -> Any:
    """The Typer option of a dataclass field whose metadata holds its `Option` (specs/options.py: its flags, help,
    panel, range, environment variable), as an `Annotated` type of `kind` (the field's type)."""
    option: Option = item.metadata["option"]
    base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)  # X of `X | None`
    extra: dict[str, Any] = {}
    if option.accepts is not None:
        extra.update(number(option.accepts, base))
    if base is Path:
        extra["readable"] = False  # vlmcli checks the path itself, with its own exit code
    if option.envvar:
        extra["envvar"] = option.envvar
    if option.shown_default:
        extra["show_default"] = option.shown_default
    if option.metavar:
        extra["metavar"] = option.metavar
    return Annotated[kind, typer.Option(*option.flags, help=option.help, rich_help_panel=option.panel, **extra)]


_RUN_OPTION_TYPES = typing.get_type_hints(RunOptions)
ModelOpt, FamilyOpt, RevisionOpt = run_option("model"), run_option("family"), run_option("revision")
DTypeOpt, DeviceOpt, AdapterOpt = run_option("dtype"), run_option("device"), run_option("adapter")
OfflineOpt, TrustRemoteCodeOpt = run_option("offline"), run_option("trust_remote_code")
AllowPickleOpt, MaxNewTokensOpt = run_option("allow_pickle"), run_option("max_new_tokens")
SplitOpt, LongestEdgeOpt, PasswordOpt = run_option("split"), run_option("longest_edge"), run_option("password")
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
         "'vlmcli\\[docling]').")]
TablesOpt = Annotated[Optional[Path], typer.Option(
    "--tables",
    readable=False, help="Write every table as CSV into this folder (<input>.p<page>.t<k>.csv): a DocTags or DocLang "
                        "model's tables, and the HTML, Markdown and OTSL tables other models write.")]
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
    "--top-k", **number(TOP_K_RANGE), rich_help_panel=SEARCH,
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
    **number(PAGE_TIMEOUT_RANGE, float), rich_help_panel=BATCH,
    show_default="none for generation; 120 s per poppler call",
    help="Seconds one page may take: each poppler call, and its generation (all bands and retries together).")]
BatchSizeOpt = Annotated[int, typer.Option(
    "--batch-size", **number(BATCH_SIZE_RANGE), rich_help_panel=BATCH,
    help="Pages per generate call. More pays on a GPU (pages per second); on a CPU it gains little.")]
FailFastOpt = Annotated[bool, typer.Option(
    "--fail-fast", rich_help_panel=BATCH, help="Stop at the first failed page or input, with that error's exit code.")]
FailureReportOpt = Annotated[Optional[Path], typer.Option(readable=False,
    rich_help_panel=BATCH, show_default="OUTPUT/vlmcli-failures.jsonl with -o",
    help="JSON Lines of failed pages: input, page_number, category, message, attempts, exit_code.")]


def with_run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command` with every RunOptions field as an option after its own; it receives them as one dict,
    `run_options` (RunSpec.from_options's keywords)."""
    return _with_options(command, run_option_fields())


def with_model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`with_run_options` without the engine's (a command that runs the model itself: serve)."""
    return _with_options(command, run_option_fields(engine=False))


def _with_options(command: Callable[..., Any], chosen: list) -> Callable[..., Any]:
    @functools.wraps(command)
    def with_options(**given: Any) -> Any:
        run_options = {item.name: given.pop(item.name) for item in chosen}
        return command(**given, run_options=run_options)

    return _signed(with_options, command, "run_options", chosen, _RUN_OPTION_TYPES)


def with_options_of(options_class: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator: the command gets every field of the dataclass `options_class` (each with its `Option`) as an
    option after its own, and receives them as one instance, `options`."""
    chosen, hints = dataclasses.fields(options_class), typing.get_type_hints(options_class)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_options(**given: Any) -> Any:
            options = options_class(**{item.name: given.pop(item.name) for item in chosen})
            return command(**given, options=options)

        return _signed(with_options, command, "options", chosen, hints)

    return decorate


def _signed(wrapper: Callable[..., Any], command: Callable[..., Any], packed: str, chosen, hints: dict):
    """`wrapper` with the signature Typer reads the options from: `command`'s own parameters but `packed`, then
    one keyword parameter per field of `chosen` (required where the field has no default)."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != packed]
    shared = [inspect.Parameter(
        item.name, inspect.Parameter.KEYWORD_ONLY, annotation=typer_option(item, hints[item.name]),
        default=inspect.Parameter.empty if item.default is dataclasses.MISSING else item.default) for item in chosen]
    wrapper.__signature__ = inspect.Signature([*own, *shared])
    return wrapper


def run_spec(run_options: dict[str, Any], **more: Any):
    """The run the options describe, with the defaults of the checkpoint's family (its token budget, loop guard,
    whole pages), which its config and tokenizer files tell before the model loads; and that family."""
    import dataclasses

    from vlmcli.model.profile import load_profile

    spec = RunSpec.from_options(**run_options)
    # Another engine's checkpoint may live elsewhere only: its files are read where they are here, never fetched.
    local_only = spec.engine.kind is not Engine.transformers
    profile = load_profile(dataclasses.replace(spec.model, offline=True) if local_only else spec.model)
    asked, context = run_options.get("max_new_tokens"), profile.context_tokens
    if asked is not None and context is not None and asked >= context:
        raise UsageError(f"--max-new-tokens {asked} is beyond the model's context of {context} tokens",
                         hint=f"ask for fewer than {context}: the prompt and its image take part of the context")
    return RunSpec.from_options(**run_options, **more, transcription=profile.family.transcription), profile.family
SCALE = "Job arrays and clusters"
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", metavar="K/N", rich_help_panel=SCALE,
    show_default="from SLURM_ARRAY_TASK_ID/COUNT, or JOB_COMPLETION_INDEX with --shard-count",
    help="Read shard K of N (1-based): a fixed share of the documents, by a hash of each one's path, so N "
         "processes into one -o folder read every document once. A rerun with another N resumes from all manifests.")]
ShardCountOpt = Annotated[Optional[int], typer.Option(
    "--shard-count", **number(SHARD_COUNT_RANGE), rich_help_panel=SCALE,
    help="N for a Kubernetes Indexed Job (its completions); the shard is JOB_COMPLETION_INDEX + 1.")]
RayOpt = Annotated[Optional[str], typer.Option(
    "--ray", metavar="auto|local|ADDRESS", rich_help_panel=SCALE,
    help="Read the pages on a Ray cluster (pip install 'vlmcli\\[ray]'): auto joins the running cluster, local "
         "starts one on this machine, or a cluster address. Needs -o; the inputs must be at the same path on "
         "every node.")]
RayActorsOpt = Annotated[Optional[int], typer.Option(
    "--ray-actors", **number(RAY_ACTORS_RANGE), rich_help_panel=SCALE,
    show_default="one per GPU of the cluster, else 1",
    help="Copies of the model (Ray actors) reading pages at once.")]
RayActorCpusOpt = Annotated[Optional[float], typer.Option(
    "--ray-actor-cpus", **number(RAY_ACTOR_CPUS_RANGE, float), rich_help_panel=SCALE, show_default="1",
    help="CPUs each actor reserves; its whole part (at least 1) is the actor's torch threads. Leave CPUs free "
         "for Ray's own tasks: fractions are allowed.")]
RayActorGpusOpt = Annotated[Optional[float], typer.Option(
    "--ray-actor-gpus", **number(RAY_ACTOR_GPUS_RANGE, float), rich_help_panel=SCALE,
    show_default="1 if the cluster has GPUs, else 0",
    help="GPUs each actor reserves.")]
