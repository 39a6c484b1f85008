"""The server's state: the loaded model, the worker thread in front of it, the metrics, the work folder; and how
a request's model work is queued, timed, streamed and answered."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Request

from vlmcli import __version__
from vlmcli.errors import VlmcliError
from vlmcli.serve import chat
from vlmcli.serve.config import ServeSpec
from vlmcli.serve.errors import ApiError, from_vlmcli
from vlmcli.serve.metrics import Metrics
from vlmcli.serve.worker import ModelWorker
from vlmcli.specs import ANSWER_MAX_NEW_TOKENS, MODEL_ALIASES


class ClientGone(Exception):
    """The client closed its stream: the model stops at the next token or page."""


class Service:
    version = __version__

    def __init__(self, spec: ServeSpec, loaded) -> None:
        self.spec, self.loaded = spec, loaded
        self.family = loaded.family
        self.doctags = loaded.family.writes_doctags
        self.run_spec = spec.run
        self.model_id = spec.run.model.model_id
        self.answer_tokens = ANSWER_MAX_NEW_TOKENS
        self.metrics = Metrics()
        self.worker = ModelWorker(spec.max_waiting, on_depth=self.metrics.queue_depth.set)
        self._own_work_dir = spec.work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="vlmcli-serve-")) if spec.work_dir is None else spec.work_dir
        self.created = int(time.time())

    @asynccontextmanager
    async def lifespan(self, app) -> AsyncIterator[None]:
        yield
        self.worker.stop()
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def check_key(self, request: Request) -> None:
        """A FastAPI dependency: with a key set, every API call must carry it as a bearer token."""
        if not self.spec.api_key:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "this server needs an API key: send 'Authorization: Bearer KEY'", code="missing_key")
        if not hmac.compare_digest(token.strip().encode(), self.spec.api_key.encode()):
            raise ApiError(401, "the API key is not this server's", code="invalid_api_key")

    def check_model(self, requested: str | None) -> None:
        if requested and requested != self.model_id and MODEL_ALIASES.get(requested) != self.model_id:
            raise ApiError(404, f"the model '{requested}' is not served here (this server serves {self.model_id})",
                           param="model", code="model_not_found")

    def check_tokens(self, max_new_tokens: int | None) -> None:
        if max_new_tokens is not None and max_new_tokens > self.spec.max_tokens:
            raise ApiError(400, f"max_new_tokens {max_new_tokens} is over this server's limit of "
                                f"{self.spec.max_tokens}", param="max_new_tokens")

    def model_card(self) -> dict:
        """/v1/models' entry, with what `--engine server` needs to render pages as a local run would."""
        from vlmcli.model.processor import resolution

        return {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "vlmcli",
                "vlmcli": {"max_input_px": self.loaded.max_input_px, "doctags": self.doctags,
                           "family": self.family.name,
                           **resolution(self.loaded)}}

    def complete(self, conversation: chat.Conversation, spec, deadline_s: float, on_start=lambda: None,
                 on_text=None):
        """A chat completion on the worker thread, its generation bounded by the request's deadline."""
        left_s = max(0.001, deadline_s - time.monotonic())
        generation = chat.complete(self.loaded, conversation, dataclasses.replace(spec, max_time_s=left_s),
                                   on_start, on_text)
        self.metrics.generated(generation.prompt_tokens, generation.image_tokens, generation.new_tokens)
        return generation

    def count_page(self, item) -> None:
        from vlmcli.pipeline.results import PageResult

        if isinstance(item, PageResult):
            self.metrics.generated(0, item.image_tokens, item.new_tokens)
            self.metrics.pages.labels(outcome="ok").inc()
        else:
            self.metrics.pages.labels(outcome="failed").inc()

    async def run(self, work: Callable[[float], Any]) -> Any:
        """`work(deadline_s)` on the model's thread; its errors as the server answers them."""
        deadline_s = time.monotonic() + self.spec.timeout_s
        queued_at = time.monotonic()
        future = self.worker.submit(lambda: self._timed(work, deadline_s, queued_at), deadline_s)
        return await answered(asyncio.wrap_future(future))

    def stream(self, work: Callable[[float, Callable, Callable], Any], text_filter=None) -> Stream:
        """`work(deadline_s, on_start, on_piece)` on the model's thread, its pieces handed on as they come."""
        return Stream(self, work, text_filter)

    def _timed(self, work, deadline_s: float, queued_at: float):
        self.metrics.queue_wait.observe(time.monotonic() - queued_at)
        return work(deadline_s)


class Stream:
    """A request whose work hands pieces (tokens, pages) to the response while it runs."""

    def __init__(self, service: Service, work, text_filter) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._started = asyncio.Event()
        self.gone = threading.Event()
        self._filter = text_filter
        deadline_s = time.monotonic() + service.spec.timeout_s
        queued_at = time.monotonic()
        submitted = service.worker.submit(
            lambda: service._timed(lambda d: work(d, self._on_start, self._on_piece), deadline_s, queued_at),
            deadline_s)
        self._future = asyncio.wrap_future(submitted)
        self._future.add_done_callback(lambda future: future.cancelled() or future.exception())

    async def started(self) -> None:
        """Return once the work has begun producing; raise its error (as the server answers it) if it failed."""
        waiter = asyncio.ensure_future(self._started.wait())
        await asyncio.wait({waiter, self._future}, return_when=asyncio.FIRST_COMPLETED)
        if not self._started.is_set():
            waiter.cancel()
            await answered(self._future)

    async def pieces(self) -> AsyncIterator[str]:
        """The pieces, in order, until the work ends; the client closing the stream stops the work."""
        try:
            while True:
                getter = asyncio.ensure_future(self._queue.get())
                await asyncio.wait({getter, self._future}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                    continue
                getter.cancel()
                while not self._queue.empty():
                    yield self._queue.get_nowait()
                tail = self._filter.flush() if self._filter else ""
                if tail:
                    yield tail
                return
        finally:
            self.gone.set()

    async def result(self) -> Any:
        return await answered(self._future)

    def _on_start(self) -> None:
        self._loop.call_soon_threadsafe(self._started.set)

    def _on_piece(self, piece: str) -> None:
        if self.gone.is_set():
            raise ClientGone()
        if self._filter is not None:
            piece = self._filter.feed(piece)
        if piece:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, piece)


async def answered(future) -> Any:
    """The future's result; a vlmcli error as the server answers it."""
    try:
        return await future
    except VlmcliError as error:
        raise from_vlmcli(error) from None
