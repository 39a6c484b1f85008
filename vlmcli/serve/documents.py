"""/v1/ocr and /v1/ask: an uploaded PDF or image read as `vlmcli ocr` and `vlmcli ask -f json` read files.

An upload is saved under the work folder, its pages counted and checked before
it queues, and removed when the request ends. /v1/ocr is a real OCR job (the
Job of jobs/ocr.py, with the server's loaded model as its engine) writing into
a folder named after the document's content, with --resume: a page is read
once, so asking for the searchable PDF after the JSON, or sending a document
again after a timeout, reads only the pages not read yet.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import io
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vlmcli.errors import VlmcliError
from vlmcli.inputs.documents import PageRef, page_ref, page_refs
from vlmcli.inputs.pages import load_page
from vlmcli.jobs import ocr as ocr_job
from vlmcli.jobs.outputs import SUFFIXES, json_line, record
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.pipeline.transcribe import LocalEngine
from vlmcli.progress import NullProgress
from vlmcli.serve.errors import ApiError, from_vlmcli
from vlmcli.specs import ANSWER_MAX_NEW_TOKENS, OutputFormat, RunSpec, SearchSpec

CHUNK_BYTES = 1 << 20
PREVIEW_EDGE_PX = 1024  # page images sent back to the browser page
MEDIA_TYPES = {OutputFormat.text: "text/plain; charset=utf-8", OutputFormat.markdown: "text/markdown; charset=utf-8",
               OutputFormat.json: "application/x-ndjson", OutputFormat.html: "text/html; charset=utf-8",
               OutputFormat.doctags: "text/plain; charset=utf-8", OutputFormat.pdf: "application/pdf"}


@dataclass(frozen=True)
class Upload:
    path: Path  # where it is saved (its own folder, removed after the request)
    name: str  # the client's file name, made safe: the name records and outputs carry

    def remove(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


@dataclass(frozen=True)
class OcrOptions:
    output_format: OutputFormat = OutputFormat.json
    pages: str | None = None
    max_new_tokens: int | None = None
    prompt: str | None = None
    handwriting: bool = False
    include_images: bool = False  # json: each record carries its page as a data URI


async def save_upload(upload, work_dir: Path) -> Upload:
    """The multipart `file`, written to its own folder under `work_dir`."""
    if upload is None or not getattr(upload, "filename", None):
        raise ApiError(400, "send the document as the multipart field 'file'", param="file")
    name = safe_name(upload.filename)
    folder = work_dir / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    path = folder / name
    with open(path, "wb") as handle:
        while chunk := await upload.read(CHUNK_BYTES):
            handle.write(chunk)
    return Upload(path, name)


def safe_name(filename: str) -> str:
    name = re.sub(r"[^\w.\- ]", "_", Path(filename.replace("\\", "/")).name).strip(" .")
    return name[:120] or "upload"


def planned_pages(upload: Upload, pages: str | None, run: RunSpec, max_pages: int) -> list[PageRef]:
    """The pages a request will read, checked before it queues (a bad file or range is a 400, too many a 413)."""
    try:
        refs = page_refs(upload.path, pages, run.pdf)
    except VlmcliError as error:
        raise from_vlmcli(_named(error, upload)) from None
    if len(refs) > max_pages:
        raise ApiError(413, f"{len(refs)} pages is over this server's limit of {max_pages} per request",
                       code="too_many_pages", param="pages")
    return refs


def ocr_request(upload: Upload, options: OcrOptions, run: RunSpec, family, work_dir: Path) -> ocr_job.OcrRequest:
    """The OCR job of an upload: its output and manifest in a folder named by the document's content."""
    digest = hashlib.sha256(upload.path.read_bytes()).hexdigest()[:32]
    tokens = options.max_new_tokens or run.generation.max_new_tokens
    generation = dataclasses.replace(run.generation, max_new_tokens=tokens)
    return ocr_job.OcrRequest(
        inputs=(upload.path,), instruction=family.instruction(options.prompt, options.handwriting),
        run=dataclasses.replace(run, generation=generation), pages=options.pages,
        output_format=options.output_format, out_dir=work_dir / "jobs" / digest, resume=True, family=family)


def run_ocr(loaded, request: ocr_job.OcrRequest, upload: Upload, options: OcrOptions,
            on_line: Callable[[str], None], deadline_s: float,
            on_item: Callable[[PageResult | PageFailure], None] = lambda item: None) -> bytes | None:
    """Run the job on the worker thread. Streams each page's JSON line to `on_line` (plain renderings); returns
    the whole output file's bytes for the others, None when streamed. Past `deadline_s`, or when `on_line`
    raises (its client went away), the job ends after the page being read; the pages read so far stay in its
    manifest."""
    streams = streams_pages(options, request.family)
    failures: list[PageFailure] = []

    def on_page(item: PageResult | PageFailure) -> None:
        on_item(item)
        if isinstance(item, PageFailure):
            failures.append(item)
        if streams:
            on_line(page_line(item, upload, request.run, options.include_images))
        if time.monotonic() >= deadline_s:
            raise ApiError(504, "the request timed out; the pages read so far are kept: send it again to go on",
                           code="timeout")

    ocr_job.run_ocr(request, write=lambda text: None, progress=NullProgress(), engine=LocalEngine(loaded),
                    on_page=on_page)
    if streams:
        return None
    target = request.out_dir / (upload.name + SUFFIXES[options.output_format])
    if not target.is_file():
        raise from_vlmcli(_named(failures[0].error, upload)) if failures else ApiError(500, "no output was written")
    content = target.read_bytes()
    target.unlink()
    return content


def streams_pages(options: OcrOptions, family) -> bool:
    """Whether /v1/ocr streams each page's JSON line as it is read: JSON of a family that writes text. A Docling
    model's JSON (DocTags, DocLang) is `ocr -f json`'s whole file: each page's elements with their boxes, then the
    document."""
    return options.output_format is OutputFormat.json and not family.docling_markup


def page_line(item: PageResult | PageFailure, upload: Upload, run: RunSpec, include_image: bool) -> str:
    """A page's JSON line as `ocr -f json` writes it, naming the upload (not the server's path)."""
    line = {**record(item), "source": upload.name}
    if "error" in line:
        line["error"] = line["error"].replace(str(upload.path), upload.name)
    if include_image and item.page_number is not None:
        line["image"] = preview(page_ref(upload.path, item.page_number, run.pdf), run)
    return json_line(line)


def ask(loaded, upload: Upload, question: str, run: RunSpec, search: SearchSpec, max_new_tokens: int | None,
        include_images: bool) -> dict:
    """`ask -f json` over the upload, with the server's model (on the worker thread)."""
    from vlmcli.pipeline.docqa.answer import ask_documents
    from vlmcli.pipeline.docqa.answerer import VlmAnswerer

    answer_run = dataclasses.replace(run, generation=dataclasses.replace(
        run.generation, max_new_tokens=max_new_tokens or ANSWER_MAX_NEW_TOKENS))
    # Pages without text are transcribed as /v1/ocr reads them, so the page cache serves both.
    answerer = VlmAnswerer(answer_run, run, NullProgress(), loaded=loaded)
    try:
        answer = ask_documents([upload.path], question, answer_run, search, answerer=answerer, ocr_run=run)
    except VlmcliError as error:
        raise from_vlmcli(_named(error, upload)) from None
    result = _renamed(answer.record(), str(upload.path), upload.name)
    if include_images:
        for citation in result["citations"]:
            citation["image"] = preview(page_ref(upload.path, citation["page_number"], run.pdf), run)
    return result


def preview(ref: PageRef, run: RunSpec) -> str:
    """The page as a JPEG data URI, at most PREVIEW_EDGE_PX on its longest edge."""
    image = load_page(ref, PREVIEW_EDGE_PX, bands=False, pdf=run.pdf)
    image.thumbnail((PREVIEW_EDGE_PX, PREVIEW_EDGE_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _named(error: VlmcliError, upload: Upload) -> VlmcliError:
    """The error as the client should read it: the upload's name, not the server's path."""
    renamed = copy.copy(error)
    renamed.message = error.message.replace(str(upload.path), upload.name)
    renamed.args = (renamed.message,)
    return renamed


def _renamed(value, path: str, name: str):
    if isinstance(value, str):
        return value.replace(path, name)
    if isinstance(value, list):
        return [_renamed(item, path, name) for item in value]
    if isinstance(value, dict):
        return {key: _renamed(item, path, name) for key, item in value.items()}
    return value
