"""Work ahead on background threads (stdlib only): the next page renders while this one generates; an engine's
pages go out several at a time."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def ahead(work: Callable[[Item], Result], items: list[Item]) -> Iterator[Future]:
    """Futures of `work(item)` in order; each next one is submitted when the one before is handed out."""
    if not items:
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlmcli-prefetch", initializer=_yield_to_the_model)
    try:
        upcoming = pool.submit(work, items[0])
        for index in range(len(items)):
            current = upcoming
            if index + 1 < len(items):
                upcoming = pool.submit(work, items[index + 1])
            yield current
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _yield_to_the_model() -> None:
    # Where the model already fills every core (CPU runs), prefetching at normal
    # priority slows the page being generated; at the lowest priority it only
    # takes idle time. poppler, started from this thread, inherits the priority.
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def in_order(work: Callable[[Item], Result], items: list[Item], workers: int) -> Iterator[Result]:
    """`work(item)` for every item on `workers` threads, at most `workers` ahead of the one handed out, handed
    out in order. Closing the iterator cancels the work not started; what is running finishes unseen."""
    if not items:
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vlmcli-engine")
    try:
        running = deque(pool.submit(work, item) for item in items[:workers])
        for index in range(len(items)):
            result = running.popleft().result()
            if index + workers < len(items):
                running.append(pool.submit(work, items[index + workers]))
            yield result
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
