"""The Ray Data actor of `vlmcli ocr --ray`: loads the model once, then reads batches of pages with the same
pipeline as a local run (no Ray import: Ray Data wraps the class; workers import it by name).

Pages travel as rows of plain values (absolute path, page index, position in the
driver's plan) and come back as JSON text, so nothing but strings and numbers
crosses the cluster; a page's error becomes a failure record, as in a local run.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlmcli.errors import ExitCode, VlmcliError
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs.ledger import RESULT_FIELDS
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.pipeline.transcribe import read_pages
from vlmcli.specs import RunSpec


class PageReader:
    """Reads the pages of a batch; one instance per Ray actor, so one model load per actor."""

    def __init__(self, instruction: str, run: RunSpec) -> None:
        from vlmcli import model

        self.instruction, self.run = instruction, run
        self.loaded = model.load(run.model, run.split)

    def __call__(self, batch: dict) -> dict:
        refs = [PageRef(Path(str(path)), int(index), int(count), bool(is_pdf)) for path, index, count, is_pdf
                in zip(batch["path"], batch["page_index"], batch["page_count"], batch["is_pdf"])]
        items = read_pages(self.loaded, refs, self.instruction, self.run)
        return {"position": [int(position) for position in batch["position"]], "item": [encode(i) for i in items]}


def page_row(position: int, ref: PageRef) -> dict:
    """What an actor needs to read a page (the path absolute: workers do not share the driver's directory)."""
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
