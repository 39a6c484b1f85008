"""Use cases: `ask` and `transcribe`. No Typer or Rich here; callers get plain data.

Everything cheap is checked before the model loads (files, pages, passwords),
so a typo costs milliseconds. The heavy modules (`model`, `generate`) are
imported inside functions, after `--offline` has set the environment that
huggingface_hub reads at import time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from vlmcli import prefetch
from vlmcli.config import LOOP_RETRY_PENALTY, GenerationSpec, ModelSpec, PdfSpec, SplitSpec
from vlmcli.documents import PageRef, discover, load_page, page_refs  # noqa: F401 - page_refs is part of the API
from vlmcli.errors import InputError, PageTimeoutError, ResourceError, UsageError, VlmcliError
from vlmcli.progress import NullProgress, Progress
from vlmcli.prompts import user_messages
from vlmcli.splitting import cut_bands, merge_band_texts, pad_to_min_side, plan_bands

_FINISH_PRIORITY = ("repetition", "length", "stop")


@dataclass(frozen=True)
class RunSpec:
    """Everything about how pages become answers, shared by ask and ocr."""

    model: ModelSpec = field(default_factory=ModelSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    pdf: PdfSpec = field(default_factory=PdfSpec)
    page_timeout_s: float | None = None  # generation of one page, all bands and retries (poppler: pdf.timeout_s)
    batch_size: int = 1  # ocr: pages per generate call (each band a row); more pays on a GPU


@dataclass(frozen=True)
class PageResult:
    source: Path
    page_number: int
    text: str
    image_tokens: int
    new_tokens: int
    seconds: float
    finish_reason: str
    bands: int = 1
    longest_edge_px: int | None = None  # the processor's resolution this page was read at
    split: bool | None = None  # ...and whether it cut the page into sub-images
    attempts: int = 1  # generate passes: more after out-of-memory or a loop
    decoding: str = "greedy"  # "greedy+repetition_penalty" once a loop was retried


@dataclass(frozen=True)
class PageFailure:
    source: Path
    page_number: int | None  # None when the whole input failed
    error: VlmcliError
    attempts: int = 1


def transcribe(inputs: list[Path], instruction: str, run: RunSpec, *, pages: str | None = None,
               progress: Progress | None = None,
               reuse: Callable[[PageRef], PageResult | None] | None = None) -> Iterator[PageResult | PageFailure]:
    """Yield one result (or failure) per page of every input, in order. Bad inputs are skipped.

    `reuse` may return a page's result from an earlier run (the resume manifest):
    that page is yielded as is and not read again; if every page is reused the
    model is never loaded.
    """
    progress = progress or NullProgress()
    planned: list[tuple[PageRef, PageResult | None]] = []
    for path in discover(inputs):
        try:
            refs = page_refs(path, pages, run.pdf)
        except VlmcliError as error:
            yield PageFailure(path, None, error)
            continue
        planned.extend((ref, reuse(ref) if reuse else None) for ref in refs)
    todo = [ref for ref, stored in planned if stored is None]
    loaded = None
    if todo:
        progress.loading_model(run.model.model_id)
        loaded = load_model(run)
        progress.model_loaded()
    progress.pages_started(len(planned))
    results = _results(loaded, todo, instruction, run)
    try:
        for ref, stored in planned:
            item = stored if stored is not None else next(results)
            progress.page_finished(item)
            yield item
    finally:
        results.close()


def _results(loaded, todo: list[PageRef], instruction: str, run: RunSpec) -> Iterator[PageResult | PageFailure]:
    """The pages of `todo`, read in order; page by page, or `run.batch_size` pages per generate call."""
    if run.batch_size > 1:
        from vlmcli import pagebatch

        yield from pagebatch.read(loaded, todo, instruction, run)
        return
    # The next page is rendered and preprocessed on a worker thread while the
    # current one is generated (poppler, Pillow and the processor overlap the model).
    prepared = prefetch.ahead(lambda ref: prepare_page(loaded, ref, instruction, run), todo)
    try:
        for ref in todo:
            yield _read_page(loaded, ref, next(prepared), run)
    finally:
        prepared.close()


def _read_page(loaded, ref: PageRef, prepared: Future, run: RunSpec) -> PageResult | PageFailure:
    try:
        page = prepared.result()
    except VlmcliError as error:
        return PageFailure(ref.source, ref.page_number, error)
    return read_prepared(loaded, ref, page, run)


def read_prepared(loaded, ref: PageRef, page: PreparedPage, run: RunSpec) -> PageResult | PageFailure:
    """Generate a prepared page on its own (out-of-memory ladder and loop retry included)."""
    try:
        return _run_page(loaded, ref, page, run)
    except PageAttemptsFailed as failed:
        return PageFailure(ref.source, ref.page_number, failed.error, attempts=failed.attempts)
    except VlmcliError as error:
        return PageFailure(ref.source, ref.page_number, error)


@dataclass(frozen=True)
class PreparedPage:
    """A page's bands (pixels) and the model inputs built from them."""

    bands: list[Image.Image]
    inputs: list[dict]
    instruction: str


def prepare_page(loaded, ref: PageRef, instruction: str, run: RunSpec) -> PreparedPage:
    """Model inputs for a page, one per band: everything before the model runs."""
    bands = page_images(loaded, ref, run)
    return PreparedPage(bands, _build(loaded, bands, instruction), instruction)


def transcribe_page(loaded, ref: PageRef, instruction: str, run: RunSpec) -> PageResult:
    """Transcribe one page, band by band, and merge the bands."""
    return _run_page(loaded, ref, prepare_page(loaded, ref, instruction, run), run)


def _build(loaded, bands: list[Image.Image], instruction: str) -> list[dict]:
    from vlmcli.generate import build_inputs

    return [build_inputs(loaded, user_messages(instruction, 1), [band]) for band in bands]


class PageAttemptsFailed(Exception):
    """A page that failed after `attempts` generate passes (carries the last error)."""

    def __init__(self, error: VlmcliError, attempts: int) -> None:
        super().__init__(error.message)
        self.error, self.attempts = error, attempts


def _run_page(loaded, ref: PageRef, prepared: PreparedPage, run: RunSpec) -> PageResult:
    """Generate every band of a page; after out of memory, again with fewer sub-images, until none are left."""
    from vlmcli.resolution import lower_resolution, resolution

    deadline_s = time.monotonic() + run.page_timeout_s if run.page_timeout_s else None
    attempts, current, inputs = 0, loaded, prepared.inputs
    while True:
        try:
            generations, passes, decoding = _generate_bands(current, inputs, run, ref, deadline_s)
            attempts += passes
            break
        except PageTimeoutError as error:
            raise PageAttemptsFailed(error, attempts + 1) from None
        except ResourceError as error:
            attempts += 1
            lower = lower_resolution(current)
            if lower is None:
                lowest = resolution(current)
                raise PageAttemptsFailed(ResourceError(
                    f"{ref.source}: {error.message}, down to {lowest['longest_edge_px']} px"
                    f"{' with' if lowest['split'] else ' without'} sub-images", hint=error.hint), attempts) from None
            current, inputs = lower, _build(lower, prepared.bands, prepared.instruction)
    return page_result(ref, generations, attempts, decoding, resolution(current))


def page_result(ref: PageRef, generations: list, attempts: int, decoding: str, resolution: dict,
                seconds: float | None = None) -> PageResult:
    """One page's result from its bands' generations (`seconds`: their summed time unless given)."""
    text = merge_band_texts([g.text for g in generations]) if len(generations) > 1 else generations[0].text
    return PageResult(
        source=ref.source, page_number=ref.page_number, text=text,
        image_tokens=sum(g.image_tokens for g in generations),
        new_tokens=sum(g.new_tokens for g in generations),
        seconds=sum(g.seconds for g in generations) if seconds is None else seconds,
        finish_reason=min((g.finish_reason for g in generations), key=_FINISH_PRIORITY.index),
        bands=len(generations), attempts=attempts, decoding=decoding, **resolution,
    )


def _generate_bands(loaded, band_inputs: list[dict], run: RunSpec, ref: PageRef,
                    deadline_s: float | None) -> tuple[list, int, str]:
    """One generation per band; a band that loops is decoded once more with a repetition penalty.

    Returns the generations, the number of generate passes, and the decoding used.
    """
    from vlmcli.generate import generate_from_inputs

    generations, passes, decoding = [], 0, "greedy"
    for inputs in band_inputs:
        spec = replace(run.generation, max_time_s=_time_left_s(deadline_s, run, ref))
        generation = generate_from_inputs(loaded, inputs, spec)
        passes += 1
        if generation.finish_reason == "repetition":
            retry_spec = replace(spec, repetition_penalty=LOOP_RETRY_PENALTY,
                                 max_time_s=_time_left_s(deadline_s, run, ref))
            retried = generate_from_inputs(loaded, inputs, retry_spec)
            passes += 1
            if retried.finish_reason != "repetition":
                generation, decoding = retried, f"greedy+repetition_penalty={LOOP_RETRY_PENALTY:g}"
        if generation.finish_reason == "time":
            raise page_timeout(run, ref)
        generations.append(generation)
    return generations, passes, decoding


def _time_left_s(deadline_s: float | None, run: RunSpec, ref: PageRef) -> float | None:
    if deadline_s is None:
        return None
    left_s = deadline_s - time.monotonic()
    if left_s <= 0:
        raise page_timeout(run, ref)
    return left_s


def page_timeout(run: RunSpec, ref: PageRef) -> PageTimeoutError:
    return PageTimeoutError(f"{ref.source}: page {ref.page_number} went past --page-timeout "
                            f"({run.page_timeout_s:g} s) while generating",
                            hint="raise --page-timeout, or lower --max-new-tokens or --longest-edge")


def ask(inputs: list[Path], question: str, run: RunSpec, *, page_number: int = 1,
        on_text: Callable[[str], None] | None = None, progress: Progress | None = None):
    """Answer a question about one or more images / PDF pages; returns a `Generation`."""
    from vlmcli.generate import generate

    if not question.strip():
        raise UsageError("the question is empty")
    refs = [_ask_page(path, page_number, run.pdf) for path in inputs]
    progress = progress or NullProgress()
    progress.loading_model(run.model.model_id)
    loaded = load_model(run)
    progress.model_loaded()
    page_bands = [band for ref in refs for band in page_images(loaded, ref, run)]
    return generate(loaded, user_messages(question, len(page_bands)), page_bands, run.generation, on_text)


def page_images(loaded, ref: PageRef, run: RunSpec) -> list[Image.Image]:
    """The pixels the model sees for a page: the same for ask and ocr."""
    page = pad_to_min_side(load_page(ref, loaded.max_input_px, run.split.bands, run.pdf))
    if not run.split.bands:
        return [page]
    return cut_bands(page, plan_bands(page.width, page.height, loaded.max_input_px, run.split.band_overlap))


def load_model(run: RunSpec):
    """Load the checkpoint (the first point where torch is imported)."""
    if run.model.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from vlmcli import model

    return model.load(run.model, run.split)


def _ask_page(path: Path, page_number: int, pdf_spec: PdfSpec) -> PageRef:
    if path.is_dir():
        raise InputError(f"{path}: is a directory", hint="ask takes image or PDF files")
    refs = page_refs(path, None, pdf_spec)
    if page_number > len(refs):
        raise UsageError(f"--page {page_number} is past the end of {path} ({len(refs)} pages)")
    return refs[page_number - 1]
