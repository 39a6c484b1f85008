"""A model's transcription laid onto a first pass's word boxes (pure; rapidfuzz).

The model reads better; the first pass knows where each word is. The two word
sequences are aligned on the words they share (rapidfuzz's Indel opcodes over
folded words: a longest common subsequence), and each shared word takes the
first pass's box. Between two shared words, the runs the readers differ on are
matched when their characters mostly agree (a misread, "rnillion" for
"million"; a run split differently, "4," "213" for "4,213"): each model word
takes the part of the run's boxes that its characters cover. A model word the first pass did
not see gets a box interpolated from its neighbours: in the gap between them on
their line, or beside the nearer one; a whole line the first pass missed goes
between the lines around it. First-pass words the model did not write are
dropped: the words, and their order, are the model's.
"""

from __future__ import annotations

import statistics
import unicodedata
from dataclasses import dataclass

from vlmcli.words import Box, PageWords, Word, union

MIN_RUN_SIMILARITY = 60.0  # rapidfuzz ratio of two differing runs' characters for them to be one run misread
# Below this share of the model's words found by the first pass, the two readers do not agree on the page (a
# model that read something else, or a first pass that read noise): nothing is placed, rather than guessed.
MIN_MATCHED_SHARE = 0.5
MARKUP = set("#|*_-=>`~:+")  # Markdown a model writes around its text: table rules, emphasis, headings
DEFAULT_CHAR_WIDTH = 0.5  # of a line's height, where no word was matched to measure it


@dataclass(frozen=True)
class _Token:
    text: str
    line: int  # the model's line


@dataclass(frozen=True)
class _Placed:
    box: Box
    confidence: float | None


def align(text: str, first: PageWords) -> PageWords:
    """The model's words of `text`, in its order and lines, each with a box on `first`'s page. Fewer than
    MIN_MATCHED_SHARE of them found by the first pass: no words."""
    tokens = model_tokens(text)
    placed = _matched(tokens, first.words)
    if sum(spot is not None for spot in placed) < MIN_MATCHED_SHARE * len(tokens) or not any(placed):
        return PageWords(first.width_pt, first.height_pt, (), first.engine, first.dpi)
    _interpolate(tokens, placed, first.width_pt)
    words = tuple(Word(token.text, spot.box, spot.confidence, token.line) for token, spot in zip(tokens, placed))
    return PageWords(first.width_pt, first.height_pt, words, first.engine, first.dpi)


def model_tokens(text: str) -> list[_Token]:
    """The words of a transcription, line by line; Markdown rules and emphasis marks are not words."""
    tokens = []
    for line_number, line in enumerate(line for line in text.splitlines() if line.strip()):
        for token in line.split():
            if set(token) <= MARKUP:
                continue
            tokens.append(_Token(token.strip("*_`") or token, line_number))
    return tokens


def fold(word: str) -> str:
    """A word as two readers are compared: NFKC, case folded, letters and digits only."""
    return "".join(char for char in unicodedata.normalize("NFKC", word).casefold() if char.isalnum())


def _matched(tokens: list[_Token], words: tuple[Word, ...]) -> list[_Placed | None]:
    """Each model word's box where the first pass read it: shared words, and runs that are misreads of each other."""
    from rapidfuzz import fuzz
    from rapidfuzz.distance import Indel

    placed: list[_Placed | None] = [None] * len(tokens)
    # A word with no letter or digit ("-", "...") is no evidence: its key matches nothing.
    model_keys = [fold(t.text) or f"\0m{index}" for index, t in enumerate(tokens)]
    first_keys = [fold(w.text) or f"\0f{index}" for index, w in enumerate(words)]
    equal = [op for op in Indel.opcodes(model_keys, first_keys) if op.tag == "equal"] if tokens and words else []
    model_at = first_at = 0
    for op in [*equal, None]:
        model_end, first_end = (op.src_start, op.dest_start) if op else (len(tokens), len(words))
        if model_end > model_at and first_end > first_at and fuzz.ratio(
                "".join(model_keys[model_at:model_end]), "".join(first_keys[first_at:first_end])) >= MIN_RUN_SIMILARITY:
            placed[model_at:model_end] = _share(tokens[model_at:model_end], words[first_at:first_end])
        if op:
            shared = words[op.dest_start:op.dest_end]
            placed[op.src_start:op.src_end] = [_Placed(word.bbox_pt, word.confidence) for word in shared]
            model_at, first_at = op.src_end, op.dest_end
    return placed


def _share(tokens: list[_Token], boxes: tuple[Word, ...]) -> list[_Placed]:
    """Each model word's part of a run of first-pass words, by the share of the characters it covers."""
    if len(tokens) == len(boxes):
        return [_Placed(word.bbox_pt, word.confidence) for word in boxes]
    model_spans = _spans([len(t.text) for t in tokens])
    first_spans = _spans([len(w.text) for w in boxes])
    shares = []
    for start, end in model_spans:
        parts = []  # (characters covered, line, part of the box)
        for word, (word_start, word_end) in zip(boxes, first_spans):
            low, high = max(start, word_start), min(end, word_end)
            if high > low:
                x0, y0, x1, y1 = word.bbox_pt
                scale = (x1 - x0) / (word_end - word_start)
                parts.append((high - low, word, (x0 + (low - word_start) * scale, y0,
                                                 x0 + (high - word_start) * scale, y1)))
        main_line = max(parts, key=lambda part: part[0])[1].line
        on_line = [part for part in parts if part[1].line == main_line]
        confidences = [part[1].confidence for part in on_line if part[1].confidence is not None]
        shares.append(_Placed(union([part[2] for part in on_line]), min(confidences) if confidences else None))
    return shares


def _spans(lengths: list[int]) -> list[tuple[float, float]]:
    """Each length's share of the whole as [start, end) on 0..1."""
    sizes = [max(length, 1) for length in lengths]
    total, position, spans = sum(sizes), 0, []
    for size in sizes:
        spans.append((position / total, (position + size) / total))
        position += size
    return spans


def _interpolate(tokens: list[_Token], placed: list[_Placed | None], page_width_pt: float) -> None:
    """Fill every unplaced run from the anchors around it (in place)."""
    anchors = [index for index, spot in enumerate(placed) if spot is not None]
    char_width = _char_width(tokens, placed, anchors)
    left_margin = min(placed[index].box[0] for index in anchors)
    index = 0
    while index < len(tokens):
        if placed[index] is not None:
            index += 1
            continue
        end = index
        while end < len(tokens) and placed[end] is None:
            end += 1
        before = placed[index - 1] if index > 0 else None
        after = placed[end] if end < len(tokens) else None
        before_line = tokens[index - 1].line if before else None
        after_line = tokens[end].line if after else None
        lines = sorted({tokens[k].line for k in range(index, end)})
        missed = [line for line in lines if line not in (before_line, after_line)]
        for line in lines:
            run = [k for k in range(index, end) if tokens[k].line == line]
            texts = [tokens[k].text for k in run]
            if line == before_line:
                limit = after.box[0] if after and line == after_line and _same_line(before.box, after.box) else None
                boxes = _after(before.box, texts, char_width, limit, page_width_pt)
            elif line == after_line:
                boxes = _before(after.box, texts, char_width)
            else:
                slot = _missed_line_slot(missed.index(line), len(missed), before, after)
                boxes = _after((left_margin, slot[0], left_margin, slot[1]), texts, char_width, None, page_width_pt,
                               leading_space=False)
            for k, box in zip(run, boxes):
                placed[k] = _Placed(box, None)
        index = end


def _char_width(tokens: list[_Token], placed: list[_Placed | None], anchors: list[int]) -> float:
    """The median width of a character in the matched words, in points."""
    widths = [(placed[k].box[2] - placed[k].box[0]) / max(len(tokens[k].text), 1) for k in anchors]
    heights = [placed[k].box[3] - placed[k].box[1] for k in anchors]
    return statistics.median(widths) if widths else DEFAULT_CHAR_WIDTH * statistics.median(heights)


def _same_line(a: Box, b: Box) -> bool:
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap > 0.5 * min(a[3] - a[1], b[3] - b[1]) and b[0] >= a[2]


def _after(anchor: Box, texts: list[str], char_width: float, limit: float | None, page_width_pt: float, *,
           leading_space: bool = True) -> list[Box]:
    """Boxes for `texts` on the anchor's line, to its right, a character's width each; squeezed, spaces and all,
    between the anchor and `limit` (the next word) or the page's edge when they do not fit."""
    widths = [max(len(text), 1) * char_width for text in texts]
    space = char_width if leading_space else 0.0
    end = min(limit, page_width_pt) if limit is not None else page_width_pt
    needed = space + sum(widths) + char_width * (len(texts) - 1) + (char_width if limit is not None else 0.0)
    scale = min(1.0, max(end - anchor[2], 0.0) / needed) if needed > 0 else 1.0
    boxes, x = [], anchor[2] + space * scale
    for width in widths:
        boxes.append((x, anchor[1], x + width * scale, anchor[3]))
        x += (width + char_width) * scale
    return boxes


def _before(anchor: Box, texts: list[str], char_width: float) -> list[Box]:
    """Boxes for `texts` on the anchor's line, to its left, squeezed to start at the page's left edge."""
    widths = [max(len(text), 1) * char_width for text in texts]
    needed = sum(widths) + char_width * len(texts)
    scale = min(1.0, anchor[0] / needed) if needed > 0 else 1.0
    boxes, x = [], anchor[0] - needed * scale
    for width in widths:
        boxes.append((x, anchor[1], x + width * scale, anchor[3]))
        x += (width + char_width) * scale
    return boxes


def _missed_line_slot(position: int, count: int, before: _Placed | None, after: _Placed | None) -> tuple[float, float]:
    """Top and bottom of the `position`-th of `count` lines the first pass missed between two anchors: spread
    over the gap between their lines, or stacked below (above) the one there is."""
    reference = (before or after).box
    height = reference[3] - reference[1]
    if before and after and after.box[1] - before.box[3] >= height * 0.5:
        step = (after.box[1] - before.box[3]) / count
        top = before.box[3] + position * step + max(step - height, 0.0) / 2
        return top, top + min(height, step)
    if before:
        top = before.box[3] + position * height * 1.2 + height * 0.2
        return top, top + height
    top = after.box[1] - (count - position) * height * 1.2
    return top, top + height
