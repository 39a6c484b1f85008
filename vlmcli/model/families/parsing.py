"""What a family's output holds beside its text: fields (olmOCR's front matter) and boxes (DeepSeek-OCR-2's
grounding, LightOnOCR's bbox images), parsed out of the text a model wrote (pure).

A parser returns the page's readable text (tags and front matter removed: what `-f text` prints and `ask` checks)
and what it found; the raw output stays the page's `text` in the manifest, so parsing never loses anything and a
later version can parse it again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Box:
    """A region the model named, on a 0..`scale` grid over the page (its card's coordinates), top-left origin."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float
    text: str = ""
    scale: float = 1000.0

    def fractions(self) -> tuple[float, float, float, float]:
        """The box as fractions of the page's width and height."""
        return tuple(max(0.0, min(1.0, v / self.scale)) for v in (self.x0, self.y0, self.x1, self.y1))


@dataclass(frozen=True)
class Parsed:
    text: str  # readable text: markup of boxes and front matter taken out
    fields: dict = field(default_factory=dict)
    boxes: tuple[Box, ...] = ()
    # The model says the page lies turned: turning it this many degrees counter-clockwise (90, 180, 270) makes it
    # upright, and the page is read again so (pipeline/page.py); 0: upright.
    turn_deg: int = 0


Parser = Callable[[str], Parsed]


def plain(text: str) -> Parsed:
    return Parsed(text)


_FRONT_MATTER = re.compile(r"\A\s*---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)
_FIELD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*?)\s*$")


def front_matter(text: str) -> Parsed:
    """olmOCR-2: a YAML front matter (`primary_language`, `is_rotation_valid`, `rotation_correction`, `is_table`,
    `is_diagram`) before the page's Markdown. Flat `key: value` lines only, as olmOCR writes them: booleans, ints,
    null and strings, so no YAML library is needed. A page it says is not upright (`is_rotation_valid: false`)
    is to be turned by `rotation_correction` degrees, as olmOCR's toolkit turns it (PIL's ROTATE_90/180/270)."""
    found = _FRONT_MATTER.match(text)
    if not found:
        return Parsed(text)
    fields = {}
    for line in found.group(1).splitlines():
        if (item := _FIELD.match(line)) is not None:
            fields[item.group(1)] = _scalar(item.group(2))
    correction = fields.get("rotation_correction")
    turn_deg = correction if fields.get("is_rotation_valid") is False and correction in (90, 180, 270) else 0
    return Parsed(text[found.end():].strip(), fields, turn_deg=turn_deg)


def _scalar(value: str):
    lowered = value.strip().strip("'\"")
    if lowered.lower() in ("true", "false"):
        return lowered.lower() == "true"
    if lowered.lower() in ("null", "none", "~", ""):
        return None
    try:
        return int(lowered)
    except ValueError:
        try:
            return float(lowered)
        except ValueError:
            return lowered


_GROUNDING = re.compile(r"<\|ref\|>(.*?)<\|/ref\|><\|det\|>\s*\[(.*?)\]\s*<\|/det\|>", re.S)
_NUMBERS = re.compile(r"-?\d+(?:\.\d+)?")


def deepseek_grounding(text: str) -> Parsed:
    """DeepSeek-OCR-2 in grounding mode: `<|ref|>label<|/ref|><|det|>[[x0, y0, x1, y1], ...]<|/det|>` before each
    block's text, on a 0..999 grid. Each box gets the text up to the next block."""
    boxes, pieces, last = [], [], 0
    matches = list(_GROUNDING.finditer(text))
    for index, match in enumerate(matches):
        pieces.append(text[last:match.start()])
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        block = text[match.end():end].strip()
        numbers = [float(n) for n in _NUMBERS.findall(match.group(2))]
        for start in range(0, len(numbers) - 3, 4):
            boxes.append(Box(match.group(1).strip(), *numbers[start:start + 4], text=block, scale=999.0))
        last = match.end()
    pieces.append(text[last:])
    readable = re.sub(r"<\|/?(?:ref|det|grounding)\|>", "", "".join(pieces))
    return Parsed(re.sub(r"\n{3,}", "\n\n", readable).strip(), boxes=tuple(boxes))


_BBOX_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]*)\)\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*,"
                         r"\s*(\d+(?:\.\d+)?)")


def lighton_bbox(text: str) -> Parsed:
    """LightOnOCR-2's bbox variants: `![alt](image_N.png)x0,y0,x1,y1` for each figure, on a 0..1000 grid; the
    coordinates are taken out of the text, the image reference stays."""
    boxes = tuple(Box(match.group(1) or "image", *(float(match.group(i)) for i in range(3, 7)), text=match.group(2))
                  for match in _BBOX_IMAGE.finditer(text))
    readable = _BBOX_IMAGE.sub(lambda match: f"![{match.group(1)}]({match.group(2)})", text)
    return Parsed(readable, boxes=boxes)


def _tagged(tag: str) -> re.Pattern:
    return re.compile(rf"<{tag}>(.*?)</{tag}>", re.S)


_PAGE_NUMBER, _WATERMARK, _SIGNATURE = _tagged("page_number"), _tagged("watermark"), _tagged("signature")


def nanonets_tags(text: str) -> Parsed:
    """Nanonets-OCR2: Markdown whose page furniture is tagged. `<page_number>` and `<watermark>` are not the
    page's text: they become the fields `page_number` (as written: "14", "9/22"; the first if several) and
    `watermarks`, and leave the text. `<signature>` and `<img>` mark where a signature or a figure sits in the
    text, so they stay; signatures are also listed (`signatures`: what the model wrote inside the tag). Checkboxes
    (☐ ☑ ☒) are characters of the text."""
    fields: dict = {}
    if page_numbers := [found.strip() for found in _PAGE_NUMBER.findall(text)]:
        fields["page_number"] = page_numbers[0]
    if watermarks := [found.strip() for found in _WATERMARK.findall(text)]:
        fields["watermarks"] = watermarks
    if signatures := [found.strip() for found in _SIGNATURE.findall(text)]:
        fields["signatures"] = signatures
    readable = _WATERMARK.sub("", _PAGE_NUMBER.sub("", text))
    return Parsed(re.sub(r"\n{3,}", "\n\n", readable).strip(), fields)


_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
_BLOCK_END = re.compile(r"</[^<>]*>|<nl>|<page_break>")  # where a Docling element, a table row or a page ends
_MARKUP_TAG = re.compile(r"<[^<>]*>")


def markup_words(text: str) -> str:
    """The words of DocTags or DocLang markup, for a search or a check of an answer (not for output: docling-core
    converts the markup for that, an extra): each element and table row on a line of its own, table cells apart,
    box locations and other tags gone, XML's entities and CDATA sections as their text."""
    import html

    text = _CDATA.sub(lambda found: html.escape(found.group(1), quote=False), text)
    text = _MARKUP_TAG.sub(" ", _BLOCK_END.sub("\n", text))
    lines = (" ".join(html.unescape(line).split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


PARSERS: dict[str, Parser] = {"plain": plain, "front_matter": front_matter, "deepseek_grounding": deepseek_grounding,
                              "lighton_bbox": lighton_bbox, "nanonets_tags": nanonets_tags}
