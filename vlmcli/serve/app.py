"""The FastAPI application: routes, the key check, the body cap, and every error as JSON (serve/errors.py).

The handlers parse and check a request on the event loop (or Starlette's
thread pool), then hand the model's part to the one worker thread
(serve/worker.py) and wait for it; streams carry its text as it comes.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from vlmcli.errors import VlmcliError
from vlmcli.serve import chat, documents
from vlmcli.serve.errors import ApiError, body, from_vlmcli, headers
from vlmcli.serve.limits import BodyLimit, Observed
from vlmcli.serve.service import Service
from vlmcli.specs import DEFAULT_TOP_K, OutputFormat, SearchSpec

STATIC = resources.files("vlmcli.serve") / "static"


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="vlmcli", version=service.version, docs_url="/docs", redoc_url=None,
                  lifespan=service.lifespan)
    app.add_middleware(BodyLimit, max_bytes=service.spec.max_body_bytes)
    app.add_middleware(Observed, metrics=service.metrics)
    _handle_errors(app)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    authorized = [Depends(service.check_key)]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": service.model_id, "waiting": service.worker.waiting}

    @app.get("/metrics", dependencies=authorized)
    def metrics() -> Response:
        return Response(service.metrics.text(), media_type=service.metrics.content_type)

    @app.get("/v1/models", dependencies=authorized)
    def models() -> dict:
        return {"object": "list", "data": [service.model_card()]}

    @app.post("/v1/chat/completions", dependencies=authorized)
    async def chat_completions(request: chat.ChatRequest) -> Response:
        service.check_model(request.model)
        conversation = await run_in_threadpool(chat.conversation, request, service.spec.max_pages)
        spec = chat.generation_spec(request, service.spec.max_new_tokens or service.answer_tokens,
                                    service.spec.max_tokens)
        if request.stream:
            include_usage = bool((request.stream_options or {}).get("include_usage"))
            return await _stream_chat(service, conversation, spec, include_usage)
        generation = await service.run(lambda deadline_s: service.complete(conversation, spec, deadline_s))
        completion_id, created = chat.new_id()
        return JSONResponse(chat.completion(completion_id, service.model_id, created, generation))

    @app.post("/v1/ocr", dependencies=authorized)
    async def ocr(file: Annotated[UploadFile | None, File()] = None,
                  output_format: Annotated[OutputFormat, Query(alias="format")] = OutputFormat.json,
                  pages: str | None = None, max_new_tokens: Annotated[int | None, Query(ge=1)] = None,
                  prompt: str | None = None, handwriting: bool = False, include_images: bool = False) -> Response:
        service.check_tokens(max_new_tokens)
        options = documents.OcrOptions(output_format, pages, max_new_tokens, prompt, handwriting, include_images)
        upload = await documents.save_upload(file, service.work_dir)
        try:
            await run_in_threadpool(documents.planned_pages, upload, pages, service.run_spec, service.spec.max_pages)
            request = await run_in_threadpool(documents.ocr_request, upload, options, service.run_spec,
                                              service.family, service.work_dir)
        except BaseException:
            upload.remove()
            raise
        return await _ocr_response(service, upload, request, options)

    @app.post("/v1/ask", dependencies=authorized)
    async def ask(file: Annotated[UploadFile | None, File()] = None,
                  question: Annotated[str | None, Query()] = None,
                  question_form: Annotated[str | None, Form(alias="question")] = None,
                  pages: str | None = None, top_k: Annotated[int, Query(ge=1, le=50)] = DEFAULT_TOP_K,
                  strict: bool = False, max_new_tokens: Annotated[int | None, Query(ge=1)] = None,
                  include_images: bool = False) -> JSONResponse:
        asked = (question or question_form or "").strip()
        if not asked:
            raise ApiError(400, "ask needs a question (query parameter or form field 'question')", param="question")
        service.check_tokens(max_new_tokens)
        upload = await documents.save_upload(file, service.work_dir)
        try:
            await run_in_threadpool(documents.planned_pages, upload, pages, service.run_spec, service.spec.max_pages)
            search = SearchSpec(pages=pages, top_k=top_k, strict=strict)
            answer = await service.run(lambda deadline_s: documents.ask(
                service.loaded, upload, asked, service.run_spec, search,
                max_new_tokens or service.spec.max_new_tokens, include_images))
        finally:
            upload.remove()
        return JSONResponse(answer)

    return app


async def _stream_chat(service: Service, conversation, spec, include_usage: bool) -> StreamingResponse:
    """Wait until the model starts on the request (errors until then are JSON), then stream its chunks."""
    completion_id, created = chat.new_id()
    stream = service.stream(lambda deadline_s, on_start, on_text: service.complete(
        conversation, spec, deadline_s, on_start, on_text), chat.StopFilter(spec.stop))
    await stream.started()

    def event(data: dict) -> str:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def events():
        yield event(chat.chunk(completion_id, service.model_id, created, {"role": "assistant", "content": ""}))
        async for piece in stream.pieces():
            yield event(chat.chunk(completion_id, service.model_id, created, {"content": piece}))
        try:
            generation = await stream.result()
        except ApiError as error:
            yield event(body(error))
        else:
            yield event(chat.chunk(completion_id, service.model_id, created, {}, generation))
            if include_usage:
                yield event({**chat.chunk(completion_id, service.model_id, created, {}), "choices": [],
                             "usage": chat.usage(generation)})
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _ocr_response(service: Service, upload: documents.Upload, request, options: documents.OcrOptions):
    streams = documents.streams_pages(options, service.family)
    if not streams:
        try:
            content = await service.run(lambda deadline_s: documents.run_ocr(
                service.loaded, request, upload, options, lambda line: None, deadline_s,
                on_item=service.count_page))
        finally:
            upload.remove()
        suffix = documents.SUFFIXES[options.output_format]
        return Response(content, media_type=documents.MEDIA_TYPES[options.output_format],
                        headers={"Content-Disposition": f'attachment; filename="{upload.name}{suffix}"'})
    stream = service.stream(lambda deadline_s, on_start, on_line: documents.run_ocr(
        service.loaded, request, upload, options, on_line, deadline_s,
        on_item=lambda item: (on_start(), service.count_page(item))))
    try:
        await stream.started()
    except BaseException:
        upload.remove()
        raise

    async def lines():
        try:
            async for line in stream.pieces():
                yield line
            try:
                await stream.result()
            except ApiError as error:
                yield json.dumps(body(error)) + "\n"
        finally:
            upload.remove()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _handle_errors(app: FastAPI) -> None:
    def answer(error: ApiError) -> JSONResponse:
        return JSONResponse(body(error), status_code=error.status, headers=headers(error))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return answer(error)

    @app.exception_handler(VlmcliError)
    async def vlmcli_error(request: Request, error: VlmcliError) -> JSONResponse:
        return answer(from_vlmcli(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        message = "the body is not valid JSON" if first.get("type") == "json_invalid" else \
            f"{where or 'request'}: {first.get('msg', 'invalid')}"
        json_invalid = first.get("type") == "json_invalid"
        return answer(ApiError(400, message, param=None if json_invalid else where or None, code=first.get("type")))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return answer(ApiError(error.status_code, str(error.detail), code=getattr(error, "code", None)))
