"""Transcribe the pages of many inputs, in order: plan them, load the model once, transcribe them page by page or
in batches (no Typer or Rich; callers get plain data).

Everything cheap is checked before the model loads (files, pages, passwords), so
a typo costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

from vlmcli import model
from vlmcli.errors import VlmcliError
from vlmcli.inputs import pdfs
from vlmcli.inputs.documents import PageRef, discover, page_refs
from vlmcli.pipeline import prefetch
from vlmcli.pipeline.engines import PageEngine
from vlmcli.pipeline.page import prepare_page, transcribe_prepared
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.progress import NullProgress, Progress
from vlmcli.specs import Engine, RunSpec

Reuse = Callable[[PageRef], PageResult | None]


def transcribe(inputs: list[Path], instruction: str, run: RunSpec, *, pages: str | None = None,
               progress: Progress | None = None, reuse: Reuse | None = None,
               on_plan: Callable[[list[PageRef]], None] | None = None,
               engine: PageEngine | None = None) -> Iterator[PageResult | PageFailure]:
    """Yield one result (or failure) per page of every input, in order. Bad inputs are skipped.

    `reuse` may return a page's result from an earlier run (the resume manifest):
    that page is yielded as is and not transcribed again; if every page is reused the
    model is never loaded. `on_plan` hears every page to be yielded, before the model loads.
    `engine` transcribes the pages (default: the one `run.engine` names).
    """
    progress = progress or NullProgress()
    planned: list[tuple[PageRef, PageResult | None]] = []
    for item in plan_pages(inputs, pages, run):
        if isinstance(item, PageFailure):
            yield item  # at once: the user hears of a bad input before the model loads
        else:
            planned.append((item, reuse(item) if reuse else None))
    if on_plan is not None:
        on_plan([ref for ref, _ in planned])
    todo = [ref for ref, stored in planned if stored is None]
    engine = engine or engine_for(run)
    if todo:
        engine.start(run, progress)
    if any(ref.is_pdf for ref, _ in planned):
        progress.note(f"PDFs are read by {pdfs.renderer(run.pdf)}", detail=True)
    progress.started(len(planned), "pages")
    results = engine.transcribe(todo, instruction, run)
    try:
        for done, (ref, stored) in enumerate(planned, start=1):
            item = stored if stored is not None else next(results)
            if isinstance(item, PageResult):
                progress.note(item.describe(), detail=True)
            progress.advanced(done)
            yield item
    finally:
        results.close()


def engine_for(run: RunSpec) -> PageEngine:
    """The engine `run.engine` names (its package is imported only when it is used)."""
    if run.engine.kind is Engine.server:
        from vlmcli.pipeline.engines.server import ServerEngine

        return ServerEngine(run.engine)
    if run.engine.kind is Engine.vllm:
        from vlmcli.pipeline.engines.vllm import VllmEngine

        return VllmEngine()
    return LocalEngine()


class LocalEngine:
    """The model in this process (transformers): loaded at `start`, unless it is given loaded (the server)."""

    def __init__(self, loaded=None) -> None:
        self.loaded = loaded

    def start(self, run: RunSpec, progress: Progress) -> None:
        if self.loaded is None:
            progress.loading_model(run.model.model_id)
            self.loaded = model.load(run.model, run.split)
            progress.model_loaded()

    def transcribe(self, todo: list[PageRef], instruction: str, run: RunSpec) -> Iterator[PageResult | PageFailure]:
        return transcribe_pages(self.loaded, todo, instruction, run)


def plan_pages(inputs: list[Path], pages: str | None, run: RunSpec) -> Iterator[PageRef | PageFailure]:
    """Every page to transcribe of every input (folders expanded), in order; an input that cannot be opened is a
    failure with no page number. Checks files, page ranges and passwords; loads no model."""
    for path in discover(inputs):
        try:
            yield from page_refs(path, pages, run.pdf)
        except VlmcliError as error:
            yield PageFailure(path, None, error)


def transcribe_pages(loaded, todo: list[PageRef], instruction: str,
                     run: RunSpec) -> Iterator[PageResult | PageFailure]:
    """The pages of `todo` with a loaded model, in order; page by page, or `run.batch_size` pages per generate
    call."""
    if run.batch_size > 1:
        from vlmcli.pipeline import batch

        yield from batch.transcribe(loaded, todo, instruction, run)
        return
    # The next page is rendered and preprocessed on a worker thread while the
    # current one is generated (poppler, Pillow and the processor overlap the model).
    prepared = prefetch.ahead(lambda ref: prepare_page(loaded, ref, instruction, run), todo)
    try:
        for ref in todo:
            yield _transcribe_prefetched(loaded, ref, next(prepared), run)
    finally:
        prepared.close()


def _transcribe_prefetched(loaded, ref: PageRef, prepared: Future, run: RunSpec) -> PageResult | PageFailure:
    try:
        page = prepared.result()
    except VlmcliError as error:
        return PageFailure(ref.source, ref.page_number, error)
    return transcribe_prepared(loaded, ref, page, run)
