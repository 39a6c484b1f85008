"""The one thread that runs the model: requests wait in a bounded queue and run one at a time.

torch is not re-entrant for one model, and on a CPU one request already fills
every core, so a second worker would only slow both. Past `max_waiting`
requests the server answers 429 at once; a request still waiting at its
deadline is dropped without running (504).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from vlmcli.serve.errors import ApiError

RETRY_AFTER_S = 1


class ModelWorker:
    def __init__(self, max_waiting: int, on_depth: Callable[[int], None] = lambda depth: None) -> None:
        self.max_waiting, self.on_depth = max_waiting, on_depth
        self._queue: queue.Queue = queue.Queue()
        self._waiting = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="vlmcli-model", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return self._waiting

    def submit(self, work: Callable[[], Any], deadline_s: float) -> Future:
        """Queue `work` (run on the model thread before `deadline_s`, `time.monotonic()`); 429 if the queue is full."""
        with self._lock:
            if self._waiting >= self.max_waiting:
                raise ApiError(429, f"the server is busy ({self._waiting} requests waiting); try again shortly",
                               code="queue_full", retry_after_s=RETRY_AFTER_S)
            self._waiting += 1
            self.on_depth(self._waiting)
        future: Future = Future()
        self._queue.put((work, deadline_s, future))
        return future

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            work, deadline_s, future = job
            with self._lock:
                self._waiting -= 1
                self.on_depth(self._waiting)
            if not future.set_running_or_notify_cancel():
                continue  # its client went away while it waited
            if time.monotonic() >= deadline_s:
                future.set_exception(ApiError(504, "the request timed out while waiting for the model",
                                              code="timeout"))
                continue
            try:
                future.set_result(work())
            except StopIteration as exc:  # asyncio cannot carry it into a coroutine: it would hang the request
                future.set_exception(RuntimeError(f"StopIteration escaped the model's work: {exc!r}"))
            except BaseException as exc:  # noqa: BLE001 - handed to the request that asked, which answers it
                future.set_exception(exc)
