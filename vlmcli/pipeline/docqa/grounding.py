"""Is an answer on a page? Checked against the page's text, never taken from the model (pure; rapidfuzz).

An answer is grounded on a page when all its content words occur together in one
passage of the page text:

- content words: the answer's words and numbers, compared as wording.py folds them (stems, values), less
  the words that carry no content ("the", "is"). A number must be there with the word the answer writes
  right after it, the unit or the noun it counts ("45 days", "2 percent", "$9 million" = "9 million
  dollars"): on a page about "45 days ... 2 percent a month", "2 weeks", "45 years" and "2 months" are not
  grounded, though 2 and 45 are on it. Numbers compare by value, never approximately; a number written
  without a scale also matches the same digits with one ("4,213" is on a page saying "$4,213 million").
- a passage: one sentence, or two consecutive ones (a fact is stated in one sentence; the second covers a
  label and its value on separate lines, "Total due" / "1,250.00 EUR", and a sentence cut at an
  abbreviation). Lines wrapped inside a paragraph are joined first (a line wraps on when it ends with a
  hyphen, a comma or a colon, or runs at least 3/4 of the page's longest line and 40 characters without
  ending a sentence); other line breaks end a sentence, as in tables and forms.
- what is on the page: the text the caller passes, without page furniture (furniture.py).

Levels: "exact" (the answer's words and numbers in its order, side by side), "words" (every content word
in one passage, in any order), "fuzzy" (as "words", with some word of `FUZZY_MIN_CHARS` letters or more
matched only at rapidfuzz ratio >= `FUZZY_MIN_SCORE`: OCR slips such as "efficincy").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vlmcli.pipeline.docqa.wording import Token, fold, tokens
from vlmcli.prompts import NOT_FOUND_REPLY

FUZZY_MIN_SCORE = 90.0
FUZZY_MIN_CHARS = 6  # shorter words differ in one letter and mean something else ("lease" / "least")
WRAP_MIN_CHARS = 40
WRAP_MIN_SHARE = 0.75
_EDGE_PUNCTUATION = " \t\n\"'.,;:!?()[]"
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class Grounding:
    level: str  # "exact" | "words" | "fuzzy"
    evidence: str  # the line(s) of the page text that hold the passage the answer was found in
    score: float  # 100, or for "fuzzy" the lowest rapidfuzz ratio of a word matched approximately


@dataclass(frozen=True)
class _Passage:
    tokens: list[Token]
    first_line: int
    last_line: int


def is_answer(answer: str) -> bool:
    """False for an empty reply and for the model's "not on this page" reply."""
    folded = fold(answer).strip(_EDGE_PUNCTUATION)
    return bool(folded) and not folded.startswith(fold(NOT_FOUND_REPLY))


def ground(answer: str, page_text: str) -> Grounding | None:
    """Where on the page the answer is, or None if the page text does not support it."""
    wanted = tokens(answer)
    if not any(not token.stop for token in wanted):
        return None
    lines, passages = _passages(page_text)
    found = [(passage, _score(wanted, passage.tokens)) for passage in passages]
    found = [(passage, score) for passage, score in found if score is not None]
    if not found:
        return None
    exact = next((passage for passage, _ in found if _in_order(wanted, passage.tokens)), None)
    passage, score = (exact, 100.0) if exact else max(found, key=lambda pair: pair[1])
    level = "exact" if exact else "words" if score == 100.0 else "fuzzy"
    return Grounding(level, " ".join(filter(None, lines[passage.first_line:passage.last_line + 1])), score)


def _passages(page_text: str) -> tuple[list[str], list[_Passage]]:
    """The page's lines (whitespace collapsed; blank ones ""), and its passages: each sentence, then each two
    in a row."""
    lines = [" ".join(line.split()) for line in page_text.splitlines()]
    sentences = [_Passage(tokens(text), first, last) for text, first, last in _sentences(lines)]
    pairs = [_Passage(one.tokens + two.tokens, one.first_line, two.last_line)
             for one, two in zip(sentences, sentences[1:])]
    return lines, sentences + pairs


def _sentences(lines: list[str]) -> list[tuple[str, int, int]]:
    """(text, first line, last line) of each sentence: wrapped lines joined (a blank line ends a paragraph),
    then split after . ! ? before a capital or a digit."""
    longest = max(map(len, lines), default=0)
    found: list[tuple[str, int, int]] = []
    text, starts = "", []  # the paragraph so far; where each of its lines starts in it
    for index, line in enumerate(lines):
        if not line:
            found += _split(text, starts) if starts else []
            text, starts = "", []
            continue
        if starts and _wraps(lines[index - 1], longest):
            hyphenated = re.search(r"[^\W\d_]-$", text) and line[:1].islower()
            text = text[:-1] if hyphenated else text + " "
        elif starts:
            found += _split(text, starts)
            text, starts = "", []
        starts.append((len(text), index))
        text += line
    return found + (_split(text, starts) if starts else [])


def _wraps(line: str, longest: int) -> bool:
    if _SENTENCE_END.search(line):
        return False
    return line.endswith(("-", ",", ":")) or len(line) >= max(WRAP_MIN_CHARS, WRAP_MIN_SHARE * longest)


def _split(paragraph: str, starts: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
    def line_at(offset: int) -> int:
        return max(index for start, index in starts if start <= offset)

    bounds = [0] + [m.end() for m in _SENTENCE_BREAK.finditer(paragraph)] + [len(paragraph)]
    return [(paragraph[start:end], line_at(start), line_at(max(start, end - 1)))
            for start, end in zip(bounds, bounds[1:]) if paragraph[start:end].strip()]


def _score(answer: list[Token], passage: list[Token]) -> float | None:
    """100 when every content word and number of the answer is in the passage, each number with the word
    after it; lower when some word is there only approximately; None when one is missing."""
    wanted = [token for token in answer if not token.stop]
    present = [token for token in passage if not token.stop]
    words = [token for token in present if token.kind == "word"]
    score = 100.0
    for index, token in enumerate(wanted):
        found = (_number_score(token, _unit(wanted, index), present) if token.kind == "number"
                 else _word_score(token, words))
        if found is None:
            return None
        score = min(score, found)
    return score


def _unit(content: list[Token], index: int) -> Token | None:
    """The word after the number at `index` (past a range or list of numbers: "30 to 45 days"), if any."""
    return next((token for token in content[index + 1:] if token.kind != "number"), None)


def _number_score(number: Token, unit: Token | None, present: list[Token]) -> float | None:
    scores = [100.0 if unit is None else _word_score(unit, [after] if (after := _unit(present, index)) else [])
              for index, token in enumerate(present) if token.kind == "number" and _same_number(number, token)]
    return max((score for score in scores if score is not None), default=None)


def _same_number(answer: Token, page: Token) -> bool:
    return answer.text == page.text or (answer.mantissa is None and answer.text == page.mantissa)


def _word_score(word: Token, candidates: list[Token]) -> float | None:
    if any(candidate.text == word.text for candidate in candidates):
        return 100.0
    if len(word.raw) < FUZZY_MIN_CHARS or not candidates:
        return None
    from rapidfuzz import fuzz, process

    best = process.extractOne(word.raw, [candidate.raw for candidate in candidates], scorer=fuzz.ratio,
                              score_cutoff=FUZZY_MIN_SCORE)
    return best[1] if best else None


def _in_order(answer: list[Token], passage: list[Token]) -> bool:
    """Whether the answer's tokens, stopwords included, are a run of the passage's."""
    def same(one: Token, other: Token) -> bool:
        return one.kind == other.kind and (_same_number(one, other) if one.kind == "number" else one.text == other.text)

    width = len(answer)
    return any(all(same(a, p) for a, p in zip(answer, passage[start:start + width]))
               for start in range(len(passage) - width + 1))
