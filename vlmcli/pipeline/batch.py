"""`ocr --batch-size N`: N pages per generate call, so a GPU transcribes many pages at once.

Every band of every page in a group is one row of a left-padded batch; the rows
stop on their own. A page that needs more than one plain pass (a loop, or out of
memory for the whole batch) is transcribed again on its own by the page-by-page path,
with its retry ladder. The next group is rendered and preprocessed on the
prefetch thread (its pages on several threads) while this one generates.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from vlmcli.errors import ResourceError, VlmcliError
from vlmcli.inputs.documents import PageRef
from vlmcli.pipeline import prefetch
from vlmcli.pipeline.page import PreparedPage, page_timeout, prepare_page, transcribe_prepared, transcribe_turned
from vlmcli.pipeline.results import PageFailure, PageResult, page_result
from vlmcli.specs import RunSpec


@dataclass(frozen=True)
class _Group:
    refs: list[PageRef]
    pages: list[PreparedPage | VlmcliError]  # per ref: its bands, or why it could not be prepared
    inputs: dict | None  # the batch of every band of the readable pages


def transcribe(loaded, refs: list[PageRef], instruction: str, run: RunSpec) -> Iterator[PageResult | PageFailure]:
    """Results for `refs`, in order."""
    groups = [refs[start:start + run.batch_size] for start in range(0, len(refs), run.batch_size)]
    prepared = prefetch.ahead(lambda group: _prepare(loaded, group, instruction, run), groups)
    try:
        for future in prepared:
            yield from _transcribe_group(loaded, future.result(), run)
    finally:
        prepared.close()


def _prepare(loaded, refs: list[PageRef], instruction: str, run: RunSpec) -> _Group:
    """Render and preprocess a group's pages on several threads, then pad their rows into one batch.

    The image processor is the slow part on a GPU machine (most of it Pillow's
    resize, which releases the GIL), so pages go in parallel.
    """
    from vlmcli.model.generate import merge_rows

    workers = min(len(refs), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vlmcli-preprocess") as pool:
        pages = list(pool.map(lambda ref: _prepare_page(loaded, ref, instruction, run), refs))
    rows = [row for page in _prepared_only(pages) for row in page.inputs]
    return _Group(refs, pages, merge_rows(loaded, rows) if rows else None)


def _prepare_page(loaded, ref: PageRef, instruction: str, run: RunSpec) -> PreparedPage | VlmcliError:
    try:
        return prepare_page(loaded, ref, instruction, run)
    except VlmcliError as error:
        return error


def _transcribe_group(loaded, group: _Group, run: RunSpec) -> Iterator[PageResult | PageFailure]:
    generations = _generate(loaded, group, run)
    rows_done = 0
    for ref, page in zip(group.refs, group.pages):
        if isinstance(page, VlmcliError):
            yield PageFailure(ref.source, ref.page_number, page)
            continue
        rows = generations[rows_done:rows_done + len(page.bands)] if generations else []
        rows_done += len(page.bands)
        yield _page(loaded, ref, page, rows, run, generations, tried=group.inputs is not None)


def _generate(loaded, group: _Group, run: RunSpec) -> list | None:
    """One generation per row, or None when the batch as a whole could not run."""
    from vlmcli.model.generate import generate_batch

    if group.inputs is None:
        return None
    try:
        return generate_batch(loaded, group.inputs, replace(run.generation, max_time_s=run.page_timeout_s))
    except ResourceError:
        return None


def _page(loaded, ref: PageRef, page: PreparedPage, rows: list, run: RunSpec,
          batch: list | None, tried: bool) -> PageResult | PageFailure:
    from vlmcli.model.processor import resolution

    if not rows or any(row.finish_reason == "repetition" for row in rows):
        alone = transcribe_prepared(loaded, ref, page, run)
        return replace(alone, attempts=alone.attempts + 1) if tried else alone  # the batch pass counts
    if any(row.finish_reason == "time" for row in rows):
        return PageFailure(ref.source, ref.page_number, page_timeout(run, ref))
    # The call's wall time, shared by its rows, so that seconds add up over pages.
    seconds = rows[0].seconds * len(rows) / len(batch)
    result = page_result(ref, rows, attempts=1, decoding="greedy", resolution=resolution(loaded), seconds=seconds)
    return transcribe_turned(loaded, ref, page, run, result)


def _prepared_only(pages: list[PreparedPage | VlmcliError]) -> list[PreparedPage]:
    return [page for page in pages if isinstance(page, PreparedPage)]
