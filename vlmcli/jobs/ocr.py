"""`vlmcli ocr` as a durable job: resume from the manifest, keep going past bad pages, report them, write the
output files, and decide the exit code (no Typer or Rich).

Order of writes for each page, so that a kill at any instant loses nothing, in
one method (`Job.take`) that every reader of pages calls (the local loop here,
the Ray driver, the server's /v1/ocr, whatever the engine): the page's record
goes into the manifest (fsynced) first; an input's output file is written
(atomically) once all its pages have been seen. A resumed run replays the
manifest's records through the same renderer, so its files are byte for byte
those of a run that was never interrupted.

A shard of a job array (`--shard K/N`) reads its share of the documents (jobs/shards.py)
into the same folder as the others, with a manifest and failure report of its own;
each output file belongs to one shard and is named as in one unsharded run.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from contextlib import closing, nullcontext
from dataclasses import dataclass
from pathlib import Path

from vlmcli import model
from vlmcli.cache import keys
from vlmcli.cache.store import PageCache
from vlmcli.errors import DependencyError, ExitCode, OutputError, UsageError, VlmcliError
from vlmcli.files import check_writable_folder, remove_stale_temp_files
from vlmcli.inputs import pdfs
from vlmcli.inputs.documents import PageRef, discover, page_ref
from vlmcli.inputs.firstpass import tesseract
from vlmcli.jobs import renderings
from vlmcli.jobs.folder import OutputFolder, not_outputs, refuse_clobbering
from vlmcli.jobs.ledger import Ledger
from vlmcli.jobs.outputs import Sink, relative_name
from vlmcli.jobs.shards import Shard
from vlmcli.model.families import Family
from vlmcli.model.families.idefics import SMOLVLM
from vlmcli.pipeline.engines import PageEngine
from vlmcli.pipeline.firstpass import FirstPassReader, first_pass_reader
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.pipeline.transcribe import transcribe
from vlmcli.progress import NullProgress, Progress
from vlmcli.specs import FirstPass, FirstPassSpec, OutputFormat, RunSpec
from vlmcli.words.align import align

# The formats that carry word boxes: the first pass runs for them (a plain model's pages)
WORD_FORMATS = (OutputFormat.json, OutputFormat.pdf, OutputFormat.hocr, OutputFormat.alto)

FAILURE_REPORT_NAME = "vlmcli-failures.jsonl"


@dataclass(frozen=True)
class OcrRequest:
    inputs: tuple[Path, ...]
    instruction: str
    run: RunSpec
    pages: str | None = None
    output_format: OutputFormat = OutputFormat.text
    out_dir: Path | None = None
    resume: bool = False
    force: bool = False  # write into an output folder over an earlier manifest, or beside files vlmcli did not write
    fail_fast: bool = False
    failure_report: Path | None = None  # default: OUT/vlmcli-failures.jsonl with -o, none without
    shard: Shard | None = None  # a job array's share of the documents; None or 1/1: all of them
    family: Family = SMOLVLM  # the checkpoint's family (model/families): what it writes and how it is parsed

    @property
    def doctags(self) -> bool:
        return self.family.writes_doctags
    # Every table as a CSV file here: a Docling model's (DocTags, DocLang), a text family's HTML, OTSL, Markdown
    tables_dir: Path | None = None
    # The first pass whose word boxes a plain model's words go on (json, pdf, hocr, alto)
    first_pass: FirstPassSpec = dataclasses.field(default_factory=FirstPassSpec)


@dataclass
class OcrSummary:
    pages_ok: int = 0
    pages_failed: int = 0
    pages_reused: int = 0  # of pages_ok, taken from the manifest
    exit_code: ExitCode = ExitCode.ok
    failure_report: Path | None = None

    def line(self) -> str:
        reused = f" ({self.pages_reused} from the manifest)" if self.pages_reused else ""
        report = f"; failures listed in {self.failure_report}" if self.pages_failed and self.failure_report else ""
        return f"{self.pages_ok} pages ok{reused}, {self.pages_failed} failed{report}"


def run_ocr(request: OcrRequest, write: Callable[[str], None], progress: Progress | None = None,
            on_failure: Callable[[PageFailure], None] = lambda failure: None, engine: PageEngine | None = None,
            on_page: Callable[[PageResult | PageFailure], None] = lambda item: None) -> OcrSummary:
    """Transcribe every page of every input; return counts and the exit code (see `batch_exit_code`).

    `engine` reads the pages (default: the one `request.run.engine` names); `on_page` hears each page once it
    is durable."""
    progress = progress or NullProgress()
    with Job(request, write, progress, on_failure, on_page) as job:
        items = iter(transcribe(job.documents, request.instruction, request.run, pages=request.pages,
                                progress=progress, reuse=job.ledger.reuse, on_plan=job.planned, engine=engine))
        # Closing the generator (fail-fast, Ctrl-C) shuts its reading threads down now, not at garbage collection.
        with closing(items) if hasattr(items, "close") else nullcontext():
            for item in items:
                if job.take(item):
                    return job.summary  # the input in progress is not written: output only when complete
    return job.finish()


class Job:
    """One run's bookkeeping, whatever reads its pages: the documents of its shard, the manifest (`ledger`, which
    also writes each page's text through to the page cache), the output files (`sink`), the failure report and
    the counts.

    Every reader of pages hands each page to `take`, in any order: it holds the order of writes that lets a
    kill at any instant lose nothing.
    """

    def __init__(self, request: OcrRequest, write: Callable[[str], None], progress: Progress,
                 on_failure: Callable[[PageFailure], None],
                 on_page: Callable[[PageResult | PageFailure], None] = lambda item: None,
                 resolved: Callable[[], dict] | None = None) -> None:
        """`on_page` hears each page once it is durable; `resolved` gives the device type, dtype and levers the
        pages are read with (`model.resolve(...).settings()`), asked when the manifest first needs the
        fingerprint; default: as this machine loads."""
        if request.resume and request.out_dir is None:
            raise UsageError("--resume needs -o/--output: the manifest of finished pages lives in the output folder")
        self.request, self.on_failure, self.on_page = request, on_failure, on_page
        shard = request.shard if request.shard is not None and request.shard.count > 1 else None
        label = shard.label if shard else None
        self.report_path = request.failure_report or (
            request.out_dir / _report_name(label) if request.out_dir else None)
        self.summary = OcrSummary(failure_report=self.report_path)
        rendering = renderings.choose(request.output_format, markup=request.family.docling_markup,
                                      out_dir=request.out_dir, tables_dir=request.tables_dir, pdf=request.run.pdf)
        self.folder = OutputFolder(request.out_dir, label, resume=request.resume, force=request.force) \
            if request.out_dir is not None else None
        try:
            self.documents = _documents(request.inputs, shard, request.out_dir)
            self.sink = Sink(rendering, request.out_dir, list(request.inputs), write=write)
            self.sink.assign(self.documents)
            self._check_targets(label)
            cache = PageCache(warn=progress.note) if request.run.cache else None
            self.first_pass = _first_pass(request, cache, progress)
            resolved = resolved or (lambda: _resolved_here(request, progress))
            self.ledger = Ledger(request.out_dir, lambda: run_settings(request, resolved()),
                                 resume=request.resume, shard_label=label, progress=progress, cache=cache)
        except BaseException:
            self._release_folder()
            raise
        if shard is not None:
            progress.note(f"shard {shard.index}/{shard.count}: {len(self.documents)} input(s)")
        self._failure_codes: list[ExitCode] = []
        self._failed_inputs: list[Path] = []

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.ledger.__exit__(*exc_info)
        finally:
            self._release_folder()

    def planned(self, refs: list[PageRef]) -> None:
        """Every page is known: record the plan (the inputs that failed so far could not be opened, and the files
        the run writes)."""
        outputs = [target.relative_to(self.request.out_dir).as_posix() for target in self.sink.targets()]
        tables = str(self.request.tables_dir.resolve()) if self.request.tables_dir else None
        self.ledger.record_plan(refs, self._failed_inputs, outputs, tables)
        self.sink.plan(refs)

    def take(self, item: PageResult | PageFailure, settings: dict | None = None) -> bool:
        """A page is read (or failed, or came from the manifest): place its words on the first pass's boxes where
        the output needs them, record it in the manifest (fsynced) and the failure report, then hand it to the
        sink, which writes its input's file once all the input's pages are in; then tell `on_page` (the page as its
        outputs show it: parsed by its family, as the sink has it). True if the
        run stops here (`--fail-fast`; the summary has the exit code). `settings`: the page's own run settings
        where they are not the run's (a Ray actor on another kind of node)."""
        item = self.placed(item)
        self.account(item, settings)
        shown = self.parsed(item)
        self.sink.add(shown)
        self.on_page(shown)
        return self.stopped_by(item)

    def _check_targets(self, label: str | None) -> None:
        """Before any work: no output may replace an input; sweep what a killed run left; start a new report."""
        request = self.request
        own_files = [*self.sink.targets(), *([self.report_path] if self.report_path else [])]
        if request.out_dir is not None:
            own_files.append(self.folder.manifest_path)
        refuse_clobbering(own_files, self.documents)
        if request.tables_dir is not None:
            check_writable_folder(request.tables_dir, "--tables")
        if self.report_path is not None:
            check_writable_folder(self.report_path.parent, "--failure-report")
            if self.report_path.is_dir():
                raise OutputError(f"{self.report_path}: is a folder", hint="--failure-report takes a file path")
            self.report_path.unlink(missing_ok=True)  # it describes an earlier run; failed pages are tried again
        if request.out_dir is not None:
            # A SIGKILLed run cannot clean up after itself; a shard sweeps only its own files (others are running).
            own = None if label is None else {*self.sink.targets(), self.folder.manifest_path}
            remove_stale_temp_files(request.out_dir, only_for=own)

    def _release_folder(self) -> None:
        if self.folder is not None:
            self.folder.release()

    def placed(self, item: PageResult | PageFailure) -> PageResult | PageFailure:
        """A page with its words on the first pass's boxes, where the output needs them; a page the first pass
        fails on fails with the engine's error, as a page the renderer fails on does."""
        if self.first_pass is None or not isinstance(item, PageResult):
            return item
        try:
            found = self.first_pass.words(page_ref(item.source, item.page_number, self.request.run.pdf))
        except VlmcliError as error:
            return PageFailure(item.source, item.page_number, error)
        return dataclasses.replace(item, words=align(self.request.family.parse(item.text).text, found))

    def parsed(self, item: PageResult | PageFailure) -> PageResult | PageFailure:
        """The page as its outputs show it: its text parsed by the family (the manifest keeps the raw text)."""
        if not isinstance(item, PageResult) or self.request.family.parser == "plain":
            return item
        return dataclasses.replace(item, parsed=self.request.family.parse(item.text))

    def account(self, item: PageResult | PageFailure, settings: dict | None = None) -> None:
        """Count a page and make it durable: the manifest for a result, the report and manifest for a failure.
        `settings`: a result's own run settings where they are not the run's (`run_settings`)."""
        if isinstance(item, PageResult):
            self.summary.pages_ok += 1
            self.summary.pages_reused += self.ledger.record(item, settings)
            return
        self.summary.pages_failed += 1
        self._failure_codes.append(item.error.exit_code)
        if item.page_number is None:
            self._failed_inputs.append(item.source)
        self.ledger.record_failure(item)
        if self.report_path is not None:
            _append_failure(self.report_path, item)
        self.on_failure(item)

    def stopped_by(self, item: PageResult | PageFailure) -> bool:
        """True if `--fail-fast` ends the run at this item (the summary then has its exit code)."""
        if self.request.fail_fast and isinstance(item, PageFailure):
            self.summary.exit_code = item.error.exit_code
            return True
        return False

    def finish(self) -> OcrSummary:
        self.summary.exit_code = batch_exit_code(self.summary.pages_ok, self._failure_codes)
        return self.summary


def _resolved_here(request: OcrRequest, progress: Progress) -> dict:
    found = model.resolve(request.run.model)
    progress.note(found.line(request.family.name), detail=True)
    return found.settings()


def _first_pass(request: OcrRequest, cache: PageCache | None, progress: Progress) -> FirstPassReader | None:
    """The first pass whose boxes a plain model's words go on, where the output format has boxes; None if there is
    none (`model`, `none`, or `auto` with no engine installed: JSON then has no words, a PDF's lines span the page)."""
    fmt = request.output_format
    boxes_only = fmt in (OutputFormat.hocr, OutputFormat.alto)
    if boxes_only and request.first_pass.engine in (FirstPass.model, FirstPass.none):
        raise UsageError(f"-f {fmt.value} needs word boxes: a first pass reads them",
                         hint="pass --first-pass auto, tesseract or rapidocr")
    if request.family.docling_markup or fmt not in WORD_FORMATS:
        return None
    reader = first_pass_reader(request.first_pass, request.run.pdf, cache)
    if reader is None and boxes_only:
        raise DependencyError(f"-f {fmt.value} needs a first pass for word boxes, and no OCR engine is installed",
                              hint=tesseract.INSTALL_HINT)
    if reader is not None:
        progress.note(f"word boxes from {reader.name}", detail=True)
    elif fmt is OutputFormat.pdf and request.first_pass.engine is FirstPass.auto:
        progress.note("no OCR engine for word boxes: each line of the text layer spans the page "
                      f"({tesseract.INSTALL_HINT})")
    return reader


def _documents(inputs: tuple[Path, ...], shard: Shard | None, out_dir: Path | None) -> list[Path]:
    """The documents this run reads, in listing order: each once, only its shard's, none an earlier run wrote."""
    listed = not_outputs(list(dict.fromkeys(discover(list(inputs)))), list(inputs), out_dir)
    return listed if shard is None else [path for path in listed if shard.owns(relative_name(path, list(inputs)))]


def _report_name(shard_label: str | None) -> str:
    return FAILURE_REPORT_NAME if shard_label is None else f"vlmcli-failures.{shard_label}.jsonl"


def batch_exit_code(succeeded: int, failures: list[ExitCode]) -> ExitCode:
    """0 if all went well; the first failure's own code if nothing succeeded; else partial success."""
    if not failures:
        return ExitCode.ok
    return failures[0] if not succeeded else ExitCode.partial


def run_settings(request: OcrRequest, resolved: dict | None = None) -> dict:
    """Everything besides the input and page that decides a page's text: the manifest key's fingerprint.
    `resolved`: the device type, dtype and levers (default: what a load on this machine resolves to)."""
    resolved = resolved if resolved is not None else model.resolve(request.run.model).settings()
    return keys.run_settings(request.run, request.instruction, resolved, pdfs.renderer(request.run.pdf))


def _append_failure(path: Path, failure: PageFailure) -> None:
    entry = {"input": str(failure.source), "page_number": failure.page_number, "category": failure.error.category,
             "message": failure.error.message, "attempts": failure.attempts, "exit_code": int(failure.error.exit_code)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
