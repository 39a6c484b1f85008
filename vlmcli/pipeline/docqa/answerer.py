"""The model side of questions over documents: transcribe a page, or answer a question from one page.

The model loads on first use, so a typo in the input never waits for it. With
the page cache, a page's encoded image features are kept, so the next question
about that page skips the vision tower (model/levers/cached_features.py).
`Answerer` is what answer.py needs; tests pass a fake with the same two methods.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vlmcli import model
from vlmcli.cache.store import Features, PageCache
from vlmcli.files import file_sha256
from vlmcli.inputs.documents import PageRef
from vlmcli.inputs.pages import page_images
from vlmcli.pipeline.page import prepare_page, transcribe_prepared
from vlmcli.pipeline.results import PageFailure
from vlmcli.progress import Progress
from vlmcli.prompts import page_question
from vlmcli.specs import RunSpec

OnText = Callable[[str], None]


@dataclass(frozen=True)
class PageAnswer:
    """One page's answer to the question, and what it cost."""

    text: str  # the family's readable text of the answer (no grounding tags or markup)
    image_tokens: int
    new_tokens: int
    seconds: float
    finish_reason: str
    features_cached: bool = False  # the page's image features came from the page cache


class Answerer(Protocol):
    def transcribe(self, ref: PageRef) -> str:
        """The page's text as the model wrote it (the family's page instruction), as `vlmcli ocr` caches it;
        raises VlmcliError if the page cannot be transcribed."""

    def answer(self, ref: PageRef, question: str, on_text: OnText | None) -> PageAnswer:
        """The model's answer to `question` from this page alone, streamed to `on_text`."""


class VlmAnswerer:
    """`Answerer` with the checkpoint `run` names: answers with `run`, transcribes with `ocr_run` (same model).
    With a `cache`, image features are kept under `image_key` (cache/keys.py `image_settings`)."""

    def __init__(self, run: RunSpec, ocr_run: RunSpec, progress: Progress, cache: PageCache | None = None,
                 image_key: str = "", loaded=None) -> None:
        self.run, self.ocr_run, self.progress = run, ocr_run, progress
        self.cache, self.image_key = cache, image_key
        self._loaded = loaded  # a model loaded already (the server's), else loaded on first use
        self._hashes: dict[Path, str] = {}

    def transcribe(self, ref: PageRef) -> str:
        loaded = self._model()
        result = transcribe_prepared(loaded, ref, prepare_page(loaded, ref, loaded.family.instruction(), self.ocr_run),
                               self.ocr_run)
        if isinstance(result, PageFailure):
            raise result.error
        return result.text

    def answer(self, ref: PageRef, question: str, on_text: OnText | None) -> PageAnswer:
        from vlmcli.model.generate import build_inputs, generate_from_inputs

        loaded = self._model()
        started = time.perf_counter()
        images = page_images(ref, loaded.max_input_px, self.run.split, self.run.pdf)
        inputs = build_inputs(loaded, loaded.family.messages(page_question(question), len(images)), images)
        inputs, cached = self._with_features(loaded, ref, inputs)
        generation = generate_from_inputs(loaded, inputs, self.run.generation, on_text)
        return PageAnswer(loaded.family.readable(generation.text), generation.image_tokens, generation.new_tokens,
                       time.perf_counter() - started, generation.finish_reason, cached)

    def _with_features(self, loaded, ref: PageRef, inputs: dict) -> tuple[dict, bool]:
        """The inputs with the page's image features: from the cache, or encoded now and kept there."""
        if self.cache is None or self.cache.disabled:
            return inputs, False
        from vlmcli.model.levers import cached_features

        if ref.source not in self._hashes:
            self._hashes[ref.source] = file_sha256(ref.source)
        file_hash = self._hashes[ref.source]
        stored = self.cache.get_features(file_hash, ref.page_index, self.image_key)
        restored = stored and cached_features.restore(loaded, inputs, (stored.data, stored.dtype, stored.shape))
        if restored:
            return restored, True
        encoded, (data, dtype, shape) = cached_features.encode(loaded, inputs)
        self.cache.put_features(file_hash, ref.page_index, self.image_key, Features(data, dtype, shape))
        return encoded, False

    def _model(self):
        if self._loaded is None:
            self.progress.loading_model(self.run.model.model_id)
            self._loaded = model.load(self.run.model, self.run.split)
            self.progress.model_loaded()
        return self._loaded
