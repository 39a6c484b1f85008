"""Each page's text, for ranking and for checking answers: the PDF's text layer, else the text of an earlier
`vlmcli ocr` with the same settings (from the page cache), else the first pass's words (a classic OCR engine's,
cached), else the model's transcription made now (and cached).

No Typer or Rich. `Transcriber` is the model side (answerer.py, or a fake in tests).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vlmcli.cache.store import OCR, TEXT_LAYER, PageCache
from vlmcli.errors import DependencyError, PageTimeoutError, RasterizerError, VlmcliError
from vlmcli.files import file_sha256
from vlmcli.inputs import pdfs
from vlmcli.inputs.documents import PageRef
from vlmcli.pipeline.docqa import citation
from vlmcli.pipeline.firstpass import FirstPassReader
from vlmcli.progress import Progress
from vlmcli.specs import PdfSpec

MIN_TEXT_CHARS = 3  # letters or digits a text layer needs to count as one (scans have none)
MAX_UNREADABLE = 0.1  # share of replacement and private-use characters above which a text layer is garbage

# How a page's text was found, as `-v` and the JSON say it.
FROM_TEXT_LAYER, FROM_CACHED_OCR, FROM_OCR, NO_TEXT = "text_layer", "cached_ocr", "ocr", "none"
FROM_FIRST_PASS = "first_pass"
# What an answer is checked against on such a page: the PDF's own text, a classic OCR engine's words, or the
# reading model's transcription of the page image (cached OCR is keyed by the same model settings), which is a
# self-consistency check.
_CHECKED_AGAINST = {FROM_TEXT_LAYER: citation.TEXT_LAYER, FROM_FIRST_PASS: citation.FIRST_PASS,
                    FROM_CACHED_OCR: citation.TRANSCRIPTION, FROM_OCR: citation.TRANSCRIPTION, NO_TEXT: None}

Transcriber = Callable[[PageRef], str]  # a page's text from the model; raises VlmcliError when the page fails


@dataclass(frozen=True)
class PageText:
    ref: PageRef
    text: str
    source: str  # one of FROM_*

    @property
    def checked_against(self) -> str | None:
        """citation.TEXT_LAYER, FIRST_PASS or TRANSCRIPTION; None for a page without text."""
        return _CHECKED_AGAINST[self.source]


def page_texts(refs: list[PageRef], pdf: PdfSpec, ocr_settings: str, transcribe: Transcriber | None,
               cache: PageCache | None, progress: Progress, first_pass: FirstPassReader | None = None,
               readable: Callable[[str], str] = str) -> list[PageText]:
    """The text of every page in `refs`, in order. Pages without a text layer or cached OCR are read by the
    `first_pass`, else transcribed by the model now (with a progress bar; `ocr_settings` is the fingerprint
    their text is cached under, that of `vlmcli ocr`), else, without `transcribe`, ranked without text.
    A transcription is cached as the model wrote it and used as `readable` makes it (its family's readable text:
    no grounding tags, front matter or markup)."""
    hashes = _Hashes()
    layers = _text_layers(refs, pdf, hashes, cache, progress)
    found: list[PageText | None] = []
    for ref, layer in zip(refs, layers):
        if layer is not None and has_text(layer):
            found.append(PageText(ref, layer, FROM_TEXT_LAYER))
            continue
        cached = cache.get_text(hashes(ref.source), ref.page_index, OCR, ocr_settings) if cache else None
        found.append(PageText(ref, readable(cached), FROM_CACHED_OCR) if cached is not None else None)
    missing = [index for index, page in enumerate(found) if page is None]
    if missing and first_pass is not None:
        missing = _first_pass(refs, missing, found, first_pass, progress)
    if missing and transcribe is None:
        for index in missing:
            found[index] = PageText(refs[index], "", NO_TEXT)
    elif missing:
        progress.note(f"{len(missing)} page(s) have no text layer and no earlier OCR; transcribing them first "
                      "(kept in the page cache for next time)")
        progress.started(len(missing), "pages")
        for done, index in enumerate(missing, start=1):
            found[index] = _transcribed(refs[index], transcribe, ocr_settings, hashes, cache, progress, readable)
            progress.advanced(done)
    return [page for page in found if page is not None]


def _first_pass(refs: list[PageRef], missing: list[int], found: list[PageText | None], reader: FirstPassReader,
                progress: Progress) -> list[int]:
    """Read the `missing` pages with the first pass (into `found`); the pages it failed on, to be transcribed."""
    progress.note(f"{len(missing)} page(s) have no text layer; reading them with {reader.name} first "
                  "(kept in the page cache for next time)")
    progress.started(len(missing), "pages")
    failed = []
    for done, index in enumerate(missing, start=1):
        try:
            found[index] = PageText(refs[index], reader.words(refs[index]).text(), FROM_FIRST_PASS)
        except DependencyError:
            raise
        except VlmcliError as error:
            progress.note(f"{refs[index].source} page {refs[index].page_number}: {error.message}; "
                          "the model transcribes it instead")
            failed.append(index)
        progress.advanced(done)
    return failed


def transcribed_text(ref: PageRef, transcribe: Transcriber, settings: str, cache: PageCache | None) -> str:
    """The model's transcription of a page: from the page cache (an earlier `ocr` or `ask`), else made now and
    cached. Raises VlmcliError when the page cannot be read."""
    file_hash = file_sha256(ref.source) if cache else ""
    cached = cache.get_text(file_hash, ref.page_index, OCR, settings) if cache else None
    if cached is not None:
        return cached
    text = transcribe(ref)
    if cache:
        cache.put_text(file_hash, ref.page_index, OCR, text, settings)
    return text


def has_text(text: str) -> bool:
    """Whether a text layer says something: a few letters or digits, and not mostly unmappable glyphs."""
    visible = [char for char in text if not char.isspace()]
    unreadable = sum(char == "\ufffd" or unicodedata.category(char) in ("Co", "Cc") for char in visible)
    return sum(char.isalnum() for char in visible) >= MIN_TEXT_CHARS and unreadable <= MAX_UNREADABLE * len(visible)


def _text_layers(refs: list[PageRef], pdf: PdfSpec, hashes: _Hashes, cache: PageCache | None,
                 progress: Progress) -> list[str | None]:
    """Each page's text layer (None for images, and for pages whose text cannot be read), from the cache or the
    PDF. Cached per renderer, whose texts differ in spacing."""
    renderer = pdfs.renderer(pdf)
    layers: dict[PageRef, str | None] = {}
    for ref in refs:
        if ref.is_pdf and cache:
            layers[ref] = cache.get_text(hashes(ref.source), ref.page_index, TEXT_LAYER, renderer)
    for source in dict.fromkeys(ref.source for ref in refs if ref.is_pdf and layers.get(ref) is None):
        missing = [ref for ref in refs if ref.source == source and layers.get(ref) is None]
        try:
            texts = pdfs.page_texts(source, [ref.page_number for ref in missing], pdf)
        except (RasterizerError, PageTimeoutError) as error:
            progress.note(f"{error.message}; those pages are transcribed instead")
            continue
        for ref, text in zip(missing, texts):
            layers[ref] = text
            if cache:
                cache.put_text(hashes(source), ref.page_index, TEXT_LAYER, text, renderer)
    return [layers.get(ref) for ref in refs]


def _transcribed(ref: PageRef, transcribe: Transcriber, settings: str, hashes: _Hashes, cache: PageCache | None,
                 progress: Progress, readable: Callable[[str], str]) -> PageText:
    try:
        text = transcribe(ref)
    except VlmcliError as error:
        progress.note(f"{ref.source} page {ref.page_number}: could not be transcribed ({error.message}); "
                      "it is ranked without text")
        return PageText(ref, "", NO_TEXT)
    if cache:
        cache.put_text(hashes(ref.source), ref.page_index, OCR, text, settings)
    return PageText(ref, readable(text), FROM_OCR)


class _Hashes:
    """Each file's SHA-256, computed once."""

    def __init__(self) -> None:
        self._known: dict[Path, str] = {}

    def __call__(self, source: Path) -> str:
        if source not in self._known:
            self._known[source] = file_sha256(source)
        return self._known[source]
