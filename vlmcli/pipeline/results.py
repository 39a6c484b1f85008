"""What reading a page gives: a result or a failure (plain data, no model code)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vlmcli.errors import VlmcliError
from vlmcli.inputs.documents import PageRef
from vlmcli.model.families.parsing import Parsed
from vlmcli.pipeline.bands import merge_band_texts
from vlmcli.words import PageWords

_FINISH_PRIORITY = ("repetition", "length", "stop")


@dataclass(frozen=True)
class PageResult:
    source: Path
    page_number: int
    text: str
    image_tokens: int
    new_tokens: int
    seconds: float
    finish_reason: str
    bands: int = 1
    longest_edge_px: int | None = None  # the processor's resolution this page was read at
    split: bool | None = None  # ...and whether it cut the page into sub-images
    attempts: int = 1  # generate passes: more after out-of-memory or a loop
    decoding: str = "greedy"  # "greedy+repetition_penalty" once a loop was retried
    words: PageWords | None = None  # the text's words on the first pass's boxes (ocr -f json/pdf/hocr/alto)
    parsed: Parsed | None = None  # the text as the family parses it: readable text, fields, boxes (for output)
    turned_deg: int = 0  # the page was read turned this many degrees counter-clockwise, as the model asked

    @property
    def readable(self) -> str:
        """The text as a reader sees it: the family's markup of boxes and front matter taken out."""
        return self.parsed.text if self.parsed is not None else self.text

    def describe(self) -> str:
        """One line of what the page cost, for -v."""
        return (f"{self.source} page {self.page_number}: {self.image_tokens} image tokens, {self.new_tokens} new "
                f"tokens, {self.bands} band(s), {self.seconds:.1f} s, {self.finish_reason}"
                f"{f', turned {self.turned_deg} degrees' if self.turned_deg else ''}")


@dataclass(frozen=True)
class PageFailure:
    source: Path
    page_number: int | None  # None when the whole input failed
    error: VlmcliError
    attempts: int = 1


def page_result(ref: PageRef, generations: list, attempts: int, decoding: str, resolution: dict,
                seconds: float | None = None) -> PageResult:
    """One page's result from its bands' generations (`seconds`: their summed time unless given)."""
    text = merge_band_texts([g.text for g in generations]) if len(generations) > 1 else generations[0].text
    return PageResult(
        source=ref.source, page_number=ref.page_number, text=text,
        image_tokens=sum(g.image_tokens for g in generations),
        new_tokens=sum(g.new_tokens for g in generations),
        seconds=sum(g.seconds for g in generations) if seconds is None else seconds,
        finish_reason=min((g.finish_reason for g in generations), key=_FINISH_PRIORITY.index),
        bands=len(generations), attempts=attempts, decoding=decoding, **resolution,
    )
