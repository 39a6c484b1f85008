"""Engines: who turns a page's pixels into text. vlmcli renders the pages, cuts the bands, merges them and keeps
every batch promise (manifest, resume, shards, failure records) whatever the engine; an engine only transcribes.

- transformers: the model in this process (pipeline/transcribe.py, `LocalEngine`)
- server: an OpenAI-compatible server (`vlmcli serve`, vLLM, llama-server...), N pages at a time (server.py)
- vllm: vLLM's offline engine in this process, many pages per call (vllm.py)

`engine_for` (pipeline/transcribe.py) picks one from the run's `EngineSpec`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from vlmcli.inputs.documents import PageRef
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.progress import Progress
from vlmcli.specs import RunSpec


class PageEngine(Protocol):
    def start(self, run: RunSpec, progress: Progress) -> None:
        """Get ready to transcribe (load the model, reach the server); called once, and only if there are pages."""

    def transcribe(self, todo: list[PageRef], instruction: str, run: RunSpec) -> Iterator[PageResult | PageFailure]:
        """One result or failure per page of `todo`, in order (an engine may transcribe several at once)."""


class ChatEngine(PageEngine, Protocol):
    """An engine outside this process's transformers model (server, vllm), which `ask` also uses."""

    max_input_px: int  # the edge pages are rendered for (known after `start`)

    def transcribe_page(self, ref: PageRef, instruction: str, run: RunSpec) -> PageResult | PageFailure:
        """One page, its bands merged."""

    def chat(self, images: list, text: str, spec, deadline_s: float | None = None, on_text=None):
        """One question about `images`; a Generation-like answer (text, tokens, seconds, finish_reason)."""
