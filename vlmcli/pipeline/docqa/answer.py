"""A question over whole documents: find each page's text, rank the pages, ask the model on the best ones in
rank order, and stop at the first answer the page text supports (no Typer or Rich; plain data out).

A scanned page is ranked on its first pass's words (a classic OCR engine's) where there is one: the answer is
checked against those words, then, where they do not hold it, against the model's own transcription of that
page (one page, not the document); `checked_against` says which text held it.

The citation is the page that was asked, or, when its answer is on another of
the candidate pages instead, that page. An answer on none of them is kept with
`grounded: false` (or dropped under `--strict`); no answer at all is "not
found" with the pages that were asked, never a citation the text does not back.
Answers are checked against each page's text without its furniture (page
numbers, running headers and footers: furniture.py), and the result says
whether that text was the PDF's text layer or the model's own transcription.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from vlmcli import model
from vlmcli.cache import keys
from vlmcli.cache.store import PageCache
from vlmcli.errors import InputError, UsageError, VlmcliError
from vlmcli.inputs import pdfs
from vlmcli.inputs.documents import PageRef, discover, is_pdf, page_refs
from vlmcli.model.families import Family
from vlmcli.model.profile import load_profile
from vlmcli.pipeline.docqa import furniture
from vlmcli.pipeline.docqa.citation import FIRST_PASS, TRANSCRIPTION, Citation, cite, not_found
from vlmcli.pipeline.docqa.grounding import Grounding, ground, is_answer
from vlmcli.pipeline.docqa.pagetexts import FROM_FIRST_PASS, PageText, page_texts, transcribed_text
from vlmcli.pipeline.docqa.answerer import Answerer, OnText, PageAnswer, VlmAnswerer
from vlmcli.pipeline.docqa.retrieval import rank
from vlmcli.pipeline.firstpass import first_pass_reader
from vlmcli.progress import NullProgress, Progress
from vlmcli.specs import OCR_MAX_NEW_TOKENS, Engine, FirstPass, PdfSpec, RunSpec, SearchSpec

TranscriptionOf = Callable[[PageRef], str]  # the model's transcription of a page


@dataclass(frozen=True)
class RankedPage:
    page: PageText
    score: float
    body: str  # the page text answers are checked against: without page numbers, headers and footers


@dataclass(frozen=True)
class AskedPage:
    """A page the model was asked: its answer and whether that page's text supports it."""

    ref: PageRef
    answer: PageAnswer
    grounding: Grounding | None
    checked_against: str | None  # citation.TEXT_LAYER, citation.TRANSCRIPTION, or None: no text to check


@dataclass(frozen=True)
class DocAnswer:
    question: str
    asked: list[AskedPage]
    answer: str | None = None  # None: not found on any page asked
    grounded: bool = False
    grounding: str | None = None  # how the answer was found in the cited page's text: exact, words or fuzzy
    citation: Citation | None = None
    moved_from: PageRef | None = None  # the page that was asked, when the answer was found on another candidate
    ranked: list[RankedPage] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    name_files: bool = False  # several files, or a folder: citations name the file

    @property
    def found(self) -> bool:
        return self.answer is not None

    def line(self) -> str:
        """The answer and its citation, or the "not found" line (text output)."""
        if self.answer is None:
            pages_read = [(page.ref.source, page.ref.page_number) for page in self.asked]
            return not_found(pages_read, name_file=self.name_files)
        return f"{self.answer} {cite(self.citation, name_file=self.name_files, grounded=self.grounded)}"

    def record(self) -> dict:
        """The JSON output."""
        return {
            "question": self.question, "answer": self.answer, "found": self.found, "grounded": self.grounded,
            "grounding": self.grounding, "checked_against": self.citation and self.citation.checked_against,
            "citations": [self.citation.record()] if self.citation else [],
            "moved_from": None if self.moved_from is None else {"source": str(self.moved_from.source),
                                                                "page_number": self.moved_from.page_number},
            "pages_ranked": [{"source": str(r.page.ref.source), "page_number": r.page.ref.page_number,
                              "score": round(r.score, 4), "text_source": r.page.source} for r in self.ranked],
            "pages_read": [{"source": str(page.ref.source), "page_number": page.ref.page_number,
                            "answer": page.answer.text, "grounding": page.grounding and page.grounding.level,
                            "checked_against": page.checked_against,
                            "image_tokens": page.answer.image_tokens, "new_tokens": page.answer.new_tokens,
                            "seconds": round(page.answer.seconds, 3), "finish_reason": page.answer.finish_reason,
                            "features_cached": page.answer.features_cached}
                           for page in self.asked],
            "image_tokens": sum(page.answer.image_tokens for page in self.asked),
            "new_tokens": sum(page.answer.new_tokens for page in self.asked),
            "seconds": round(self.seconds, 3),
        }


def ask_documents(inputs: list[Path], question: str, run: RunSpec, search: SearchSpec, *,
                  answerer: Answerer | None = None, progress: Progress | None = None, on_text: OnText | None = None,
                  on_discard: Callable[[], None] = lambda: None, ocr_run: RunSpec | None = None) -> DocAnswer:
    """Answer `question` from the pages of `inputs` (PDFs, images, folders). `on_text` streams each page's answer
    as it is generated; `on_discard` is called when that answer is then rejected (not on the page, or "not found").
    Pages without text are transcribed with `ocr_run` (default: `run` with `vlmcli ocr`'s token budget, so that
    their text is cached under the same key as `vlmcli ocr`'s)."""
    started = time.perf_counter()
    if not question.strip():
        raise UsageError("the question is empty")
    progress = progress or NullProgress()
    refs = _refs(discover(inputs), search, run.pdf, progress)
    ocr_run = ocr_run or dataclasses.replace(
        run, generation=dataclasses.replace(run.generation, max_new_tokens=OCR_MAX_NEW_TOKENS))
    renderer = pdfs.renderer(run.pdf)
    progress.note(f"PDFs are read by {renderer}", detail=True)
    resolved = model.resolve(run.model)  # device, dtype and levers, as `vlmcli ocr` records them
    family = load_profile(run.model).family
    progress.note(resolved.line(family.name), detail=True)
    # The key `vlmcli ocr` caches a page's text under: its default instruction is the family's
    instruction = family.instruction()
    ocr_settings = keys.settings_fingerprint(keys.run_settings(ocr_run, instruction, resolved.settings(), renderer))
    image_key = keys.settings_fingerprint(keys.image_settings(run, renderer, resolved.settings(keys.IMAGE_PARTS)))
    with PageCache(warn=progress.note) if run.cache else nullcontext() as cache:
        answerer = answerer or _answerer(run, ocr_run, progress, cache, image_key, family)
        first_pass = first_pass_reader(search.first_pass, run.pdf, cache)
        transcribe = None if search.first_pass.engine is FirstPass.none else answerer.transcribe
        texts = page_texts(refs, run.pdf, ocr_settings, transcribe, cache, progress, first_pass, family.readable)
        transcription_of = (lambda ref: family.readable(transcribed_text(ref, answerer.transcribe, ocr_settings,
                                                                         cache))) if transcribe else None
        answer = _search(question, texts, answerer, search, progress, on_text, on_discard, transcription_of)
    if answer.citation is not None:
        answer = dataclasses.replace(answer, citation=_labelled(answer.citation, run.pdf, progress))
    return dataclasses.replace(answer, seconds=time.perf_counter() - started,
                               name_files=len({ref.source for ref in refs}) > 1 or any(p.is_dir() for p in inputs))


def _answerer(run: RunSpec, ocr_run: RunSpec, progress: Progress, cache, image_key: str, family: Family) -> Answerer:
    """The model in this process, or the engine `run.engine` names (asked as `family`'s card asks)."""
    if run.engine.kind is Engine.transformers:
        return VlmAnswerer(run, ocr_run, progress, cache, image_key)
    from vlmcli.pipeline.docqa.engine_answerer import EngineAnswerer
    from vlmcli.pipeline.transcribe import engine_for

    return EngineAnswerer(engine_for(run), run, ocr_run, progress, family)


def _refs(paths: list[Path], search: SearchSpec, pdf: PdfSpec, progress: Progress) -> list[PageRef]:
    """The pages to search. One input that cannot be read is the command's error; among several (a folder),
    it is skipped with a note."""
    refs: list[PageRef] = []
    for path in paths:
        try:
            refs.extend(page_refs(path, search.pages, pdf))
        except VlmcliError as error:
            if len(paths) == 1:
                raise
            progress.note(f"{error.message}; skipped")
    if not refs:
        raise InputError("no page to search: none of the inputs could be read")
    return refs


def _search(question: str, texts: list[PageText], answerer: Answerer, search: SearchSpec, progress: Progress,
            on_text: OnText | None, on_discard: Callable[[], None],
            transcription_of: TranscriptionOf | None = None) -> DocAnswer:
    bodies = _bodies(texts)
    ranked = [RankedPage(texts[r.index], r.score, bodies[r.index]) for r in rank(question, [p.text for p in texts])]
    for item in ranked:
        progress.note(f"{item.page.ref.source} page {item.page.ref.page_number}: score {item.score:.3f}, "
                      f"text from {item.page.source}", detail=True)
    answer = _ask(question, _candidates(ranked, search.top_k), answerer, search.strict, progress, on_text, on_discard,
                   transcription_of)
    return dataclasses.replace(answer, ranked=ranked)


def _bodies(texts: list[PageText]) -> list[str]:
    """Each page's text without its furniture, found among the pages of its own file."""
    by_file: dict[Path, list[int]] = {}
    for index, page in enumerate(texts):
        by_file.setdefault(page.ref.source, []).append(index)
    found = [""] * len(texts)
    for indices in by_file.values():
        for index, body in zip(indices, furniture.bodies([texts[i].text for i in indices],
                                                         [texts[i].ref.page_number for i in indices])):
            found[index] = body
    return found


def _candidates(ranked: list[RankedPage], top_k: int) -> list[RankedPage]:
    """The pages to ask: the `top_k` best that share a word with the question; if none does (a question about
    the look of a page), the first `top_k` pages."""
    matching = [item for item in ranked if item.score > 0]
    return (matching or ranked)[:top_k]  # all scores 0: `rank` kept the pages in order


def _ask(question: str, candidates: list[RankedPage], answerer: Answerer, strict: bool, progress: Progress,
          on_text: OnText | None, on_discard: Callable[[], None],
          transcription_of: TranscriptionOf | None = None) -> DocAnswer:
    """Read the candidates in rank order until an answer is grounded on one of them."""
    asked: list[AskedPage] = []
    for rank_number, item in enumerate(candidates, start=1):
        ref = item.page.ref
        progress.note(f"reading {ref.source} page {ref.page_number} (rank {rank_number} of {len(candidates)})",
                      detail=True)
        page_answer = answerer.answer(ref, question, on_text)
        answered = is_answer(page_answer.text)
        asked.append(_checked(ref, page_answer, item, transcription_of, progress) if answered else
                     AskedPage(ref, page_answer, None, item.page.checked_against))
        progress.note(_describe(asked[-1], answered), detail=True)
        if asked[-1].grounding is not None:
            return _grounded(question, asked, item.page, asked[-1].grounding, checked=asked[-1].checked_against)
        moved = _elsewhere(page_answer.text, candidates, item) if answered else None
        if moved is not None:
            return _grounded(question, asked, *moved, moved_from=ref)
        on_discard()
    ungrounded = next((page for page in asked if is_answer(page.answer.text)), None)
    if ungrounded is None or strict:
        return DocAnswer(question, asked)
    return DocAnswer(question, asked, answer=ungrounded.answer.text,
                     citation=Citation(ungrounded.ref.source, ungrounded.ref.page_number,
                                       checked_against=ungrounded.checked_against))


def _checked(ref: PageRef, page_answer: PageAnswer, item: RankedPage, transcription_of: TranscriptionOf | None,
             progress: Progress) -> AskedPage:
    """The answer checked against the page's text; for a page ranked on its first pass's words that do not hold
    it, then against the model's own transcription of the page (a misread number, a word the engine missed)."""
    grounding = ground(page_answer.text, item.body)
    if grounding is not None or item.page.source != FROM_FIRST_PASS or transcription_of is None:
        return AskedPage(ref, page_answer, grounding, item.page.checked_against)
    progress.note(f"{ref.source} page {ref.page_number}: the answer is not in the first pass's words; checking it "
                  "against the model's transcription of the page", detail=True)
    try:
        transcription = transcription_of(ref)
    except VlmcliError as error:
        progress.note(f"{ref.source} page {ref.page_number}: could not be transcribed ({error.message})")
        return AskedPage(ref, page_answer, None, item.page.checked_against)
    grounding = ground(page_answer.text, transcription)
    return AskedPage(ref, page_answer, grounding, TRANSCRIPTION if grounding else item.page.checked_against)


def _elsewhere(answer: str, candidates: list[RankedPage], asked: RankedPage) -> tuple[PageText, Grounding] | None:
    """The first other candidate page whose text holds the answer."""
    for item in candidates:
        if item is not asked and (grounding := ground(answer, item.body)) is not None:
            return item.page, grounding
    return None


def _grounded(question: str, asked: list[AskedPage], page: PageText, grounding: Grounding, *,
              moved_from: PageRef | None = None, checked: str | None = None) -> DocAnswer:
    """`checked`: what the answer was found in, where not the page's own text (a transcription made to check a
    first pass)."""
    return DocAnswer(question, asked, answer=asked[-1].answer.text, grounded=True, grounding=grounding.level,
                     citation=Citation(page.ref.source, page.ref.page_number, evidence=grounding.evidence,
                                       checked_against=checked or page.checked_against),
                     moved_from=moved_from)


def _describe(page: AskedPage, answered: bool) -> str:
    text = {TRANSCRIPTION: "the model's own transcription", FIRST_PASS: "the OCR engine's words"}.get(
        page.checked_against, "the page text")
    found = (f"in {text} ({page.grounding.level})" if page.grounding else
             f"an answer not in {text}" if answered else "no answer")
    features = ", image features from the cache" if page.answer.features_cached else ""
    return (f"{page.ref.source} page {page.ref.page_number}: {found}; {page.answer.new_tokens} new tokens, "
            f"{page.answer.seconds:.1f} s{features}")


def _labelled(citation: Citation, pdf: PdfSpec, progress: Progress) -> Citation:
    """The citation with its page's printed label, where the PDF defines one."""
    if not is_pdf(citation.source):
        return citation
    try:
        labels = pdfs.page_labels(citation.source, pdf)
    except VlmcliError as error:
        progress.note(f"{citation.source}: page labels unreadable ({error.message})", detail=True)
        return citation
    label = labels[citation.page_number - 1] if citation.page_number <= len(labels) else ""
    return dataclasses.replace(citation, page_label=label or None)
