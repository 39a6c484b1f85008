"""`ask --engine server|vllm` over whole documents: the `Answerer` of answer.py on another engine (pages rendered
here, answered there)."""

from __future__ import annotations

import time

from vlmcli.inputs.documents import PageRef
from vlmcli.inputs.pages import page_images
from vlmcli.model.families import Family
from vlmcli.pipeline.docqa.answerer import OnText, PageAnswer
from vlmcli.pipeline.engines import ChatEngine
from vlmcli.pipeline.results import PageFailure
from vlmcli.progress import Progress
from vlmcli.prompts import page_question
from vlmcli.specs import RunSpec


class EngineAnswerer:
    def __init__(self, engine: ChatEngine, run: RunSpec, ocr_run: RunSpec, progress: Progress, family: Family) -> None:
        self.engine, self.run, self.ocr_run, self.progress, self.family = engine, run, ocr_run, progress, family
        self._started = False

    def transcribe(self, ref: PageRef) -> str:
        # The family's page instruction: the one `vlmcli ocr` transcribes a page with, whose text the page cache shares
        result = self._ready().transcribe_page(ref, self.family.instruction(), self.ocr_run)
        if isinstance(result, PageFailure):
            raise result.error
        return result.text

    def answer(self, ref: PageRef, question: str, on_text: OnText | None) -> PageAnswer:
        engine = self._ready()
        started = time.perf_counter()
        images = page_images(ref, engine.max_input_px, self.run.split, self.run.pdf)
        generation = engine.chat(images, page_question(question), self.run.generation, on_text=on_text)
        return PageAnswer(self.family.readable(generation.text), generation.image_tokens, generation.new_tokens,
                       time.perf_counter() - started, generation.finish_reason)

    def _ready(self) -> ChatEngine:
        if not self._started:
            self.engine.start(self.run, self.progress)
            self._started = True
        return self.engine
