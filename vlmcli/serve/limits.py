"""Two ASGI middlewares: the cap on a request's body, and the metrics of every answer.

The cap is vlmcli's own (a few lines) rather than the framework's `max_body_size`,
which only the newest FastAPI has and which answers in its own shape: here an
oversized body is a 413 in OpenAI's error shape, whether its Content-Length says
so at once or a chunked body grows past the cap while it is read.
"""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from vlmcli.serve.errors import ApiError, body
from vlmcli.serve.metrics import Metrics

ENDPOINTS = ("/v1/chat/completions", "/v1/ocr", "/v1/ask", "/v1/models", "/health", "/metrics", "/")


class BodyTooLarge(HTTPException):
    """Raised while a body is read; FastAPI passes HTTPExceptions through its body parsing unchanged."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is over this server's limit of {max_bytes / (1 << 20):g} MiB")
        self.code = "body_too_large"


class BodyLimit:
    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            error = BodyTooLarge(self.max_bytes)
            response = JSONResponse(body(ApiError(413, str(error.detail), code=error.code)), status_code=413,
                                    headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


class Observed:
    """Counts each answer by endpoint and status, and times it to its last byte (streams included)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "/static" if path.startswith("/static/") else "other"
        status = 500

        async def observed(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.metrics.answered(endpoint, status, time.perf_counter() - started)

        await self.app(scope, receive, observed)
