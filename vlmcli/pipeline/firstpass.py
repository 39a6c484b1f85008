"""A page's first-pass words: from the page cache, else read now by the classic OCR engine (and cached).

No Typer or Rich. Used by `ask` (pages without a text layer are ranked on these
words) and by `ocr` (the model's words are placed on their boxes).
"""

from __future__ import annotations

from pathlib import Path

from vlmcli.cache import keys
from vlmcli.cache.store import PageCache
from vlmcli.files import file_sha256
from vlmcli.inputs import pdfs
from vlmcli.inputs.documents import PageRef
from vlmcli.inputs.firstpass import engines
from vlmcli.inputs.pages import page_image_at
from vlmcli.specs import FirstPassSpec, PdfSpec
from vlmcli.words import PageWords


class FirstPassReader:
    """Reads pages with `engine` ("tesseract" or "rapidocr"), keeping their words in `cache`."""

    def __init__(self, engine: str, spec: FirstPassSpec, pdf: PdfSpec, cache: PageCache | None = None) -> None:
        self.engine, self.spec, self.pdf, self.cache = engine, spec, pdf, cache
        self._hashes: dict[Path, str] = {}
        self._settings: str | None = None
        self.read_now = 0  # pages the engine read in this run (not from the cache)

    @property
    def name(self) -> str:
        """The engine and its version ("tesseract 5.3.0")."""
        return engines.version(self.engine)

    def words(self, ref: PageRef) -> PageWords:
        """The page's words; raises VlmcliError when the page cannot be rendered or the engine fails."""
        key = (self._hash(ref.source), ref.page_index, self.engine, self._settings_key()) if self.cache else None
        stored = self.cache.get_words(*key) if key else None
        if stored is not None:
            return PageWords.from_json(stored)
        image, geometry = page_image_at(ref, self.spec.dpi, self.pdf)
        found = engines.read_words(self.engine, image, geometry.width_pt, geometry.height_pt, self.spec)
        self.read_now += 1
        if key:
            self.cache.put_words(*key, found.to_json())
        return found

    def _settings_key(self) -> str:
        """What decides the words besides the page: the engine's version, its languages, the resolution, and the
        PDF renderer that drew the pixels."""
        if self._settings is None:
            self._settings = keys.settings_fingerprint({
                "engine": self.name, "languages": self.spec.languages if self.engine == "tesseract" else None,
                "dpi": self.spec.dpi, "pdf_renderer": pdfs.renderer(self.pdf)})
        return self._settings

    def _hash(self, source: Path) -> str:
        if source not in self._hashes:
            self._hashes[source] = file_sha256(source)
        return self._hashes[source]


def first_pass_reader(spec: FirstPassSpec, pdf: PdfSpec, cache: PageCache | None) -> FirstPassReader | None:
    """The reader `spec.engine` resolves to on this machine, or None (no classic engine: `model`, `none`, or
    `auto` with none installed). An engine asked for by name that is missing raises DependencyError."""
    engine = engines.resolve(spec.engine)
    return FirstPassReader(engine, spec, pdf, cache) if engine else None
