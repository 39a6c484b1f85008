"""Use cases: `ask` and `transcribe`. No Typer or Rich here; callers get plain data.

Everything cheap is checked before the model loads (files, pages, passwords),
so a typo costs milliseconds. The heavy modules (`model`, `generate`) are
imported inside functions, after `--offline` has set the environment that
huggingface_hub reads at import time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from PIL import Image

from vlmcli.config import GenerationSpec, ModelSpec, PdfSpec, SplitSpec
from vlmcli.documents import PageRef, discover, load_page, page_refs  # noqa: F401 - page_refs is part of the API
from vlmcli.errors import InputError, UsageError, VlmcliError
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


@dataclass(frozen=True)
class PageFailure:
    source: Path
    page_number: int | None  # None when the whole input failed
    error: VlmcliError


class Progress(Protocol):
    """What a caller may show while work runs (all optional to act on)."""

    def loading_model(self, model_id: str) -> None: ...
    def model_loaded(self) -> None: ...
    def pages_started(self, total: int) -> None: ...
    def page_finished(self, item: PageResult | PageFailure) -> None: ...


class NullProgress:
    def loading_model(self, model_id: str) -> None:
        pass

    def model_loaded(self) -> None:
        pass

    def pages_started(self, total: int) -> None:
        pass

    def page_finished(self, item: PageResult | PageFailure) -> None:
        pass


def transcribe(inputs: list[Path], instruction: str, run: RunSpec, *, pages: str | None = None,
               progress: Progress | None = None) -> Iterator[PageResult | PageFailure]:
    """Yield one result (or failure) per page of every input, in order. Bad inputs are skipped."""
    progress = progress or NullProgress()
    refs: list[PageRef] = []
    for path in discover(inputs):
        try:
            refs.extend(page_refs(path, pages, run.pdf))
        except VlmcliError as error:
            yield PageFailure(path, None, error)
    if not refs:
        return
    progress.loading_model(run.model.model_id)
    loaded = load_model(run)
    progress.model_loaded()
    progress.pages_started(len(refs))
    # The next page is rendered and preprocessed on a worker thread while the
    # current one is generated (poppler, Pillow and the processor overlap the model).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlmcli-prefetch",
                            initializer=_yield_to_the_model) as pool:
        upcoming = pool.submit(prepare_page, loaded, refs[0], instruction, run)
        for index, ref in enumerate(refs):
            prepared = upcoming
            if index + 1 < len(refs):
                upcoming = pool.submit(prepare_page, loaded, refs[index + 1], instruction, run)
            try:
                item: PageResult | PageFailure = _run_page(loaded, ref, prepared.result(), run)
            except VlmcliError as error:
                item = PageFailure(ref.source, ref.page_number, error)
            progress.page_finished(item)
            yield item


def _yield_to_the_model() -> None:
    # Where the model already fills every core (CPU runs), prefetching at normal
    # priority slows the page being generated; at the lowest priority it only
    # takes idle time. poppler, started from this thread, inherits the priority.
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def prepare_page(loaded, ref: PageRef, instruction: str, run: RunSpec) -> list[dict]:
    """Model inputs for a page, one per band: everything before the model runs."""
    from vlmcli.generate import build_inputs

    return [build_inputs(loaded, user_messages(instruction, 1), [band]) for band in page_images(loaded, ref, run)]


def transcribe_page(loaded, ref: PageRef, instruction: str, run: RunSpec) -> PageResult:
    """Transcribe one page, band by band, and merge the bands."""
    return _run_page(loaded, ref, prepare_page(loaded, ref, instruction, run), run)


def _run_page(loaded, ref: PageRef, band_inputs: list[dict], run: RunSpec) -> PageResult:
    from vlmcli.generate import generate_from_inputs

    generations = [generate_from_inputs(loaded, inputs, run.generation) for inputs in band_inputs]
    text = merge_band_texts([g.text for g in generations]) if len(generations) > 1 else generations[0].text
    return PageResult(
        source=ref.source, page_number=ref.page_number, text=text,
        image_tokens=sum(g.image_tokens for g in generations),
        new_tokens=sum(g.new_tokens for g in generations),
        seconds=sum(g.seconds for g in generations),
        finish_reason=min((g.finish_reason for g in generations), key=_FINISH_PRIORITY.index),
        bands=len(generations),
    )


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
