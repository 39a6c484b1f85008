"""One page: prepared (pixels → model inputs), then generated, with its retries (no Typer or Rich).

A page is generated band by band. Out of memory: again with fewer sub-images,
down to one image without splitting. A band that loops: decoded once more with a
repetition penalty. A page its model says lies turned: turned and transcribed once more.
`--page-timeout`: all bands and retries of a page together.
The model modules are imported inside functions, so planning a run (and its
input errors) never imports torch.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from vlmcli.errors import PageTimeoutError, ResourceError, VlmcliError
from vlmcli.inputs.documents import PageRef
from vlmcli.inputs.pages import page_images
from vlmcli.pipeline.results import PageFailure, PageResult, page_result
from vlmcli.specs import LOOP_RETRY_PENALTY, GenerationSpec, RunSpec


@dataclass(frozen=True)
class PreparedPage:
    """A page's bands (pixels) and the model inputs built from them."""

    bands: list[Image.Image]
    inputs: list[dict]
    instruction: str


class PageAttemptsFailed(Exception):
    """A page that failed after `attempts` generate passes (carries the last error)."""

    def __init__(self, error: VlmcliError, attempts: int) -> None:
        super().__init__(error.message)
        self.error, self.attempts = error, attempts


def prepare_page(loaded, ref: PageRef, instruction: str, run: RunSpec) -> PreparedPage:
    """Model inputs for a page, one per band: everything before the model runs."""
    bands = page_images(ref, loaded.max_input_px, run.split, run.pdf)
    return PreparedPage(bands, _build(loaded, bands, instruction), instruction)


def transcribe_prepared(loaded, ref: PageRef, page: PreparedPage, run: RunSpec) -> PageResult | PageFailure:
    """Generate a prepared page on its own (out-of-memory ladder, loop retry and the turn its family asks for)."""
    started_s = time.monotonic()
    return _settled(ref, lambda: _turned(loaded, ref, page, run, _run_page(loaded, ref, page, run), started_s))


def transcribe_turned(loaded, ref: PageRef, page: PreparedPage, run: RunSpec,
                      result: PageResult) -> PageResult | PageFailure:
    """A page already transcribed (in a batch): `result`, or the page transcribed again turned, where its family
    says it lies turned."""
    return _settled(ref, lambda: _turned(loaded, ref, page, run, result, time.monotonic()))


def _settled(ref: PageRef, transcribe: Callable[[], PageResult]) -> PageResult | PageFailure:
    """What `transcribe()` gives, or the page's failure."""
    try:
        return transcribe()
    except PageAttemptsFailed as failed:
        return PageFailure(ref.source, ref.page_number, failed.error, attempts=failed.attempts)
    except VlmcliError as error:
        return PageFailure(ref.source, ref.page_number, error)


def page_timeout(run: RunSpec, ref: PageRef) -> PageTimeoutError:
    return PageTimeoutError(f"{ref.source}: page {ref.page_number} went past --page-timeout "
                            f"({run.page_timeout_s:g} s) while generating",
                            hint="raise --page-timeout, or lower --max-new-tokens or --longest-edge")


def _build(loaded, bands: list[Image.Image], instruction: str) -> list[dict]:
    from vlmcli.model.generate import build_inputs

    return [build_inputs(loaded, loaded.family.messages(instruction, 1), [band]) for band in bands]


def _run_page(loaded, ref: PageRef, prepared: PreparedPage, run: RunSpec) -> PageResult:
    """Generate every band of a page; after out of memory, again with fewer sub-images, until none are left."""
    from vlmcli.model.processor import lower_resolution, resolution

    deadline_s = page_deadline_s(run)
    attempts, current, inputs = 0, loaded, prepared.inputs
    while True:
        try:
            generations, passes, decoding = generate_bands(
                functools.partial(_generate, current), inputs, run, ref, deadline_s)
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


# How olmOCR's toolkit turns a page by the rotation_correction its model gives (counter-clockwise).
TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def _turned(loaded, ref: PageRef, page: PreparedPage, run: RunSpec, result: PageResult,
            started_s: float) -> PageResult:
    """`result`, or, where the family's parser says the page lies turned (olmOCR-2's front matter), the page turned
    as it says and transcribed once more, as olmOCR's toolkit does; that result says it was turned, and its attempts
    count both transcriptions; --page-timeout bounds both from `started_s` on. A page transcribed in bands is not
    turned: families that turn pages transcribe them whole."""
    turn_deg = loaded.family.parse(result.text).turn_deg
    if not turn_deg or len(page.bands) != 1:
        return result
    bands = [band.transpose(TURNS[turn_deg]) for band in page.bands]
    turned = PreparedPage(bands, _build(loaded, bands, page.instruction), page.instruction)
    left_s = run.page_timeout_s - (time.monotonic() - started_s) if run.page_timeout_s else None
    if left_s is not None and left_s <= 0:
        raise PageAttemptsFailed(page_timeout(run, ref), result.attempts)
    try:
        again = _run_page(loaded, ref, turned, replace(run, page_timeout_s=left_s))
    except PageAttemptsFailed as failed:
        error = page_timeout(run, ref) if isinstance(failed.error, PageTimeoutError) else failed.error
        raise PageAttemptsFailed(error, result.attempts + failed.attempts) from None
    return replace(again, attempts=result.attempts + again.attempts, turned_deg=turn_deg)


def _generate(loaded, band: dict, spec: GenerationSpec):
    from vlmcli.model import generate

    return generate.generate_from_inputs(loaded, band, spec)


def page_deadline_s(run: RunSpec) -> float | None:
    """When the page being started must be done by (`time.monotonic()`), under --page-timeout."""
    return time.monotonic() + run.page_timeout_s if run.page_timeout_s else None


def generate_bands(generate: Callable[[Any, GenerationSpec], Any], bands: list, run: RunSpec, ref: PageRef,
                   deadline_s: float | None) -> tuple[list, int, str]:
    """One generation per band (`generate(band, spec)`, whatever the engine); a band that loops is decoded once
    more with a repetition penalty; --page-timeout bounds them all.

    Returns the generations, the number of generate passes, and the decoding used.
    """
    generations, passes, decoding = [], 0, "greedy"
    for band in bands:
        spec = replace(run.generation, max_time_s=_time_left_s(deadline_s, run, ref))
        generation = generate(band, spec)
        passes += 1
        if generation.finish_reason == "repetition":
            retry_spec = replace(spec, repetition_penalty=LOOP_RETRY_PENALTY,
                                 max_time_s=_time_left_s(deadline_s, run, ref))
            retried = generate(band, retry_spec)
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
