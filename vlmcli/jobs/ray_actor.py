"""The Ray Data actor of `vlmcli ocr --ray`: loads the model once, then transcribes batches of pages with the same
pipeline as a local run (no Ray import: Ray Data wraps the class; workers import it by name).

Pages travel as rows of plain values (absolute path, page index, position in the
driver's plan) and come back as JSON text, so nothing but strings and numbers
crosses the cluster. Every page comes back as a result or a failure record: a
page's error, and any exception transcribing it raises, is that page's failure, never
the job's end. Each answer carries the device, dtype and levers its actor loaded
with, so the driver records it under the settings it was transcribed with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from vlmcli.errors import CrashError, ExitCode, VlmcliError, first_line
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs.ledger import RESULT_FIELDS
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.pipeline.transcribe import transcribe_pages
from vlmcli.specs import ModelSpec, RunSpec


class PageTranscriber:
    """Transcribes the pages of a batch; one instance per Ray actor, so one model load per actor."""

    def __init__(self, instruction: str, run: RunSpec, skip_levers: frozenset[str]) -> None:
        from vlmcli import model

        self.instruction, self.run = instruction, run
        self.loaded = model.load(run.model, run.split, skip_levers=skip_levers)
        self.settings = json.dumps(self.loaded.resolved.settings())

    def __call__(self, batch: dict) -> dict:
        refs = [PageRef(Path(str(path)), int(index), int(count), bool(is_pdf)) for path, index, count, is_pdf
                in zip(batch["path"], batch["page_index"], batch["page_count"], batch["is_pdf"])]
        items = self.transcribe(refs)
        return {"position": [int(position) for position in batch["position"]], "item": [encode(i) for i in items],
                "settings": [self.settings] * len(items)}

    def transcribe(self, refs: list[PageRef]) -> list[PageResult | PageFailure]:
        """One answer per page. An exception that escapes the pipeline is the failure of the page being transcribed
        (page by page), or of every page of the batch not yet answered (`--batch-size` > 1: one generate call
        transcribes them together); the pages after it are transcribed on."""
        items: list[PageResult | PageFailure] = []
        while len(items) < len(refs):
            try:
                for item in self.transcribe_pages(refs[len(items):]):
                    items.append(item)
            except Exception as exc:  # noqa: BLE001 - a bug or a library's error: a page's record, not the job's end
                failed = refs[len(items):] if self.run.batch_size > 1 else refs[len(items):len(items) + 1]
                items.extend(unexpected_error(ref, exc) for ref in failed)
        return items

    def transcribe_pages(self, refs: list[PageRef]) -> Iterator[PageResult | PageFailure]:
        """The local pipeline's transcription of `refs`, in order."""
        return transcribe_pages(self.loaded, refs, self.instruction, self.run)


def node_settings(spec: ModelSpec, skip_levers: frozenset[str]) -> dict:
    """The device type, dtype and levers a load of `spec` resolves to where this runs (a Ray task placed as an
    actor would be); see model/runtime.py."""
    from vlmcli import model

    return model.resolve(spec, skip_levers=skip_levers).settings()


def unexpected_error(ref: PageRef, exc: Exception) -> PageFailure:
    error = CrashError(f"{ref.source}: page {ref.page_number}: {type(exc).__name__}: {first_line(exc)}",
                       hint="an error vlmcli does not expect (a bug): please report it, with the page if you can")
    return PageFailure(ref.source, ref.page_number, error)


def page_row(position: int, ref: PageRef) -> dict:
    """What an actor needs to transcribe a page (the path absolute: workers do not share the driver's directory)."""
    return {"position": position, "path": str(ref.source.absolute()), "page_index": ref.page_index,
            "page_count": ref.page_count, "is_pdf": ref.is_pdf}


def encode(item: PageResult | PageFailure) -> str:
    if isinstance(item, PageResult):
        return json.dumps({"result": {name: getattr(item, name) for name in RESULT_FIELDS}}, ensure_ascii=True)
    error = item.error
    return json.dumps({"failure": {"message": error.message, "hint": error.hint, "category": error.category,
                                   "exit_code": int(error.exit_code), "attempts": item.attempts}}, ensure_ascii=True)


def decode(text: str, ref: PageRef) -> PageResult | PageFailure:
    """An actor's answer for `ref`, as the page the driver planned (its own path, not the worker's)."""
    payload = json.loads(text)
    if "result" in payload:
        return PageResult(source=ref.source, page_number=ref.page_number, **payload["result"])
    failure = payload["failure"]
    message = failure["message"].replace(str(ref.source.absolute()), str(ref.source))
    error = VlmcliError(message, hint=failure["hint"])
    error.exit_code, error.category = ExitCode(failure["exit_code"]), failure["category"]
    return PageFailure(ref.source, ref.page_number, error, attempts=failure["attempts"])
