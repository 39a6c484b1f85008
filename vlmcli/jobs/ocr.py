"""`vlmcli ocr` as a durable job: resume from the manifest, keep going past bad pages, report them, write the
output files, and decide the exit code (no Typer or Rich).

Order of writes for each page, so that a kill at any instant loses nothing:
the page's record goes into the manifest (fsynced) first; an input's output
file is written (atomically) once all its pages have been seen. A resumed run
replays the manifest's records through the same renderer, so its files are
byte for byte those of a run that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from contextlib import closing, nullcontext
from dataclasses import dataclass
from pathlib import Path

from vlmcli.cache import keys
from vlmcli.cache.store import OCR, PageCache
from vlmcli.errors import ExitCode, OutputError, UsageError
from vlmcli.files import file_sha256, remove_stale_temp_files
from vlmcli.inputs import pdfs
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs import manifest, renderings
from vlmcli.jobs.outputs import Sink, check_output_dir
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.pipeline.transcribe import transcribe
from vlmcli.progress import NullProgress, Progress
from vlmcli.specs import OutputFormat, RunSpec

FAILURE_REPORT_NAME = "vlmcli-failures.jsonl"
# What the manifest keeps of a finished page: all of it but its source and number,
# which come from the page being resumed (the same content may sit at another path).
_RESULT_FIELDS = [f.name for f in dataclasses.fields(PageResult) if f.name not in ("source", "page_number")]


@dataclass(frozen=True)
class OcrRequest:
    inputs: tuple[Path, ...]
    instruction: str
    run: RunSpec
    pages: str | None = None
    output_format: OutputFormat = OutputFormat.text
    out_dir: Path | None = None
    resume: bool = False
    fail_fast: bool = False
    failure_report: Path | None = None  # default: OUT/vlmcli-failures.jsonl with -o, none without
    doctags: bool = False  # the checkpoint writes DocTags (model/profile.py)
    tables_dir: Path | None = None  # a DocTags model's tables as CSV files here


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
            on_failure: Callable[[PageFailure], None] = lambda failure: None) -> OcrSummary:
    """Transcribe every page of every input; return counts and the exit code (see `batch_exit_code`)."""
    if request.resume and request.out_dir is None:
        raise UsageError("--resume needs -o/--output: the manifest of finished pages lives in the output folder")
    progress = progress or NullProgress()
    rendering = renderings.choose(request.output_format, doctags_model=request.doctags, out_dir=request.out_dir,
                                  tables_dir=request.tables_dir, pdf=request.run.pdf)
    report_path = request.failure_report or (request.out_dir / FAILURE_REPORT_NAME if request.out_dir else None)
    summary = OcrSummary(failure_report=report_path)
    if request.out_dir is not None:
        check_output_dir(request.out_dir)
        remove_stale_temp_files(request.out_dir)  # a SIGKILLed run cannot clean up after itself
    if report_path is not None:
        report_path.unlink(missing_ok=True)  # it describes an earlier run; failed pages are tried again
    pages = _Pages(request, progress)
    sink = Sink(rendering, request.out_dir, list(request.inputs), write=write)
    failure_codes: list[ExitCode] = []
    items = iter(transcribe(list(request.inputs), request.instruction, request.run, pages=request.pages,
                            progress=progress, reuse=pages.reuse))
    # Closing the generator (fail-fast, Ctrl-C) shuts its prefetch thread down now, not at garbage collection.
    with pages, closing(items) if hasattr(items, "close") else nullcontext():
        for item in items:
            if isinstance(item, PageFailure):
                summary.pages_failed += 1
                failure_codes.append(item.error.exit_code)
                if report_path is not None:
                    _append_failure(report_path, item)
                on_failure(item)
            else:
                summary.pages_ok += 1
                summary.pages_reused += pages.record(item)
            sink.add(item)  # a new input's first page: the previous input is complete and is written now
            if request.fail_fast and isinstance(item, PageFailure):
                summary.exit_code = item.error.exit_code
                return summary  # the input in progress is not written: output only when complete
        sink.flush()
    summary.exit_code = batch_exit_code(summary.pages_ok, failure_codes)
    return summary


def batch_exit_code(succeeded: int, failures: list[ExitCode]) -> ExitCode:
    """0 if all went well; the first failure's own code if nothing succeeded; else partial success."""
    if not failures:
        return ExitCode.ok
    return failures[0] if not succeeded else ExitCode.partial


def run_settings(request: OcrRequest) -> dict:
    """Everything besides the input and page that decides a page's text: the manifest key's fingerprint."""
    return keys.run_settings(request.run, request.instruction, pdfs.renderer(request.run.pdf))


class _Pages:
    """The manifest side of a run: which pages are done, and recording the new ones (written through to the page
    cache too, where `vlmcli ask` finds the text of scanned pages)."""

    def __init__(self, request: OcrRequest, progress: Progress) -> None:
        self.fingerprint = manifest.settings_fingerprint(run_settings(request))
        self._hashes: dict[Path, str] = {}  # an input is hashed once per run
        self._reused: set[tuple[Path, int]] = set()
        self._cache = PageCache(warn=progress.note) if request.run.cache else None
        self._manifest = None
        if request.out_dir is not None:
            self._manifest = manifest.Manifest(request.out_dir / manifest.MANIFEST_NAME, resume=request.resume)
            if self._manifest.dropped_lines:
                progress.note(f"{self._manifest.path}: {self._manifest.dropped_lines} torn or unreadable line(s) "
                              "dropped; their pages are read again")

    def __enter__(self) -> _Pages:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._manifest is not None:
            self._manifest.close()
        if self._cache is not None:
            self._cache.close()

    def reuse(self, ref: PageRef) -> PageResult | None:
        if self._manifest is None:
            return None
        stored = self._manifest.get(self._key(ref.source, ref.page_index))
        if stored is None or not all(name in stored for name in _RESULT_FIELDS):
            return None
        self._reused.add((ref.source, ref.page_number))
        return PageResult(source=ref.source, page_number=ref.page_number,
                              **{name: stored[name] for name in _RESULT_FIELDS})

    def record(self, item: PageResult) -> int:
        """Make a finished page durable; 1 if it came from the manifest (nothing to write), else 0."""
        self._write_through(item)
        if self._manifest is None:
            return 0
        if (item.source, item.page_number) in self._reused:
            return 1
        stored = {name: getattr(item, name) for name in _RESULT_FIELDS}
        try:
            self._manifest.record_done(self._key(item.source, item.page_number - 1), stored)
        except OSError as exc:
            raise OutputError(f"{self._manifest.path}: cannot record the finished page ({exc.strerror or exc})",
                              hint="free space or fix the folder, then rerun with --resume") from None
        return 0

    def _write_through(self, item: PageResult) -> None:
        if self._cache is None or self._cache.disabled or not item.source.is_file():
            return
        self._cache.put_text(self._hash(item.source), item.page_number - 1, OCR, item.text, self.fingerprint)

    def _key(self, source: Path, page_index: int) -> str:
        return manifest.page_key(self._hash(source), page_index, self.fingerprint)

    def _hash(self, source: Path) -> str:
        if source not in self._hashes:
            self._hashes[source] = file_sha256(source)
        return self._hashes[source]


def _append_failure(path: Path, failure: PageFailure) -> None:
    entry = {"input": str(failure.source), "page_number": failure.page_number, "category": failure.error.category,
             "message": failure.error.message, "attempts": failure.attempts, "exit_code": int(failure.error.exit_code)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
