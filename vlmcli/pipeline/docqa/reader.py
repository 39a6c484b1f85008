"""The model side of questions over documents: transcribe a page, or answer a question from one page.

The model loads on first use, so a question answered from cached text and a
typo in the input never wait for it. `Reader` is what answer.py needs; tests
pass a fake with the same two methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vlmcli import model
from vlmcli.inputs.documents import PageRef
from vlmcli.inputs.pages import page_images
from vlmcli.pipeline.page import prepare_page, read_prepared
from vlmcli.pipeline.results import PageFailure
from vlmcli.progress import Progress
from vlmcli.prompts import OCR_PROMPT, page_question, user_messages
from vlmcli.specs import RunSpec

OnText = Callable[[str], None]


@dataclass(frozen=True)
class Reading:
    """One page's answer to the question, and what it cost."""

    text: str
    image_tokens: int
    new_tokens: int
    seconds: float
    finish_reason: str


class Reader(Protocol):
    def transcribe(self, ref: PageRef) -> str:
        """The page's text (the OCR preset); raises VlmcliError if the page cannot be read."""

    def answer(self, ref: PageRef, question: str, on_text: OnText | None) -> Reading:
        """The model's answer to `question` from this page alone, streamed to `on_text`."""


class VlmReader:
    """`Reader` with the checkpoint `run` names: answers with `run`, transcribes with `ocr_run` (same model)."""

    def __init__(self, run: RunSpec, ocr_run: RunSpec, progress: Progress) -> None:
        self.run, self.ocr_run, self.progress = run, ocr_run, progress
        self._loaded = None

    def transcribe(self, ref: PageRef) -> str:
        loaded = self._model()
        result = read_prepared(loaded, ref, prepare_page(loaded, ref, OCR_PROMPT, self.ocr_run), self.ocr_run)
        if isinstance(result, PageFailure):
            raise result.error
        return result.text

    def answer(self, ref: PageRef, question: str, on_text: OnText | None) -> Reading:
        from vlmcli.model.generate import generate

        loaded = self._model()
        images = page_images(ref, loaded.max_input_px, self.run.split, self.run.pdf)
        generation = generate(loaded, user_messages(page_question(question), len(images)), images,
                              self.run.generation, on_text)
        return Reading(generation.text, generation.image_tokens, generation.new_tokens, generation.seconds,
                       generation.finish_reason)

    def _model(self):
        if self._loaded is None:
            self.progress.loading_model(self.run.model.model_id)
            self._loaded = model.load(self.run.model, self.run.split)
            self.progress.model_loaded()
        return self._loaded
