"""The pure parts of questions over documents: ranking (bm25s), grounding (rapidfuzz), citations, text layers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmcli.pipeline.docqa.citation import Citation, cite, not_found
from vlmcli.pipeline.docqa.grounding import FUZZY_MIN_CHARS, fold, ground, is_answer, numbers
from vlmcli.pipeline.docqa.pagetexts import has_text
from vlmcli.pipeline.docqa.retrieval import rank

FILLER = "The committee met on Tuesday to review the budget of the facilities team and the travel policy."


def _order(question: str, texts: list[str]) -> list[int]:
    return [ranked.index for ranked in rank(question, texts)]


def test_the_page_with_the_fact_ranks_first_among_fifty():
    texts = [f"{FILLER} Section {n}." for n in range(50)]
    texts[37] = "Total revenue for fiscal year 2023 was 4,213 million dollars."
    texts[12] = "Revenue in 2022 was 3,937 million dollars."
    assert _order("What was the revenue in 2023?", texts)[:2] == [37, 12]


def test_two_page_documents_get_nonzero_scores():
    """rank-bm25's Okapi IDF scores a matching page 0 when the term is on half the pages; bm25s's does not."""
    ranked = rank("termination notice", ["The termination notice period is 30 days.", "Payment terms."])
    assert ranked[0].index == 0 and ranked[0].score > 0 and ranked[1].score == 0


def test_numbers_stemming_and_single_characters():
    assert _order("4213", ["nothing here", "a total of 4,213 units"])[0] == 1
    assert _order("4,213", ["a total of 4213 units", "nothing here"])[0] == 0
    assert _order("revenues", ["costs went up", "revenue went up"])[0] == 1
    assert _order("item 7", ["item 3 is paid", "item 7 is open"])[0] == 1


def test_no_shared_word_ranks_every_page_zero_in_order():
    ranked = rank("What is it?", ["alpha", "", "beta"])
    assert [(r.index, r.score) for r in ranked] == [(0, 0.0), (1, 0.0), (2, 0.0)]
    assert rank("anything", []) == []


PAGE = ("ANNUAL REPORT, eyes only\nTotal revenue for fiscal year 2023 was $4,213 million, up 7 per-\ncent on the year.\n"
        "Chief executive: Jane O\u2019Neil\nThe e\ufb03ciency programme ended.")


@pytest.mark.parametrize(("answer", "level", "evidence"), [
    ("$4,213 million", "exact", "Total revenue"),
    ("  jane o'neil. ", "exact", "Chief executive"),  # case, quotes, edge punctuation
    ("7 percent", "exact", "Total revenue"),  # a word hyphenated across lines
    ("efficiency programme", "exact", "The e"),  # a ligature
    ("4213", "number", "Total revenue"),
    ("It was 4 213 million in 2023", "number", "Total revenue"),
    ("Jane ONeil", "fuzzy", "Chief executive"),
])
def test_grounded_answers(answer, level, evidence):
    grounding = ground(answer, PAGE)
    assert grounding is not None and grounding.level == level and grounding.evidence.startswith(evidence)


@pytest.mark.parametrize("answer", ["John Smith", "2022", "$5,000", "Jo", "", "   ", "yes"])
def test_answers_the_page_does_not_hold(answer):
    assert ground(answer, PAGE) is None


def test_not_found_replies_are_not_answers():
    assert not is_answer("NOT FOUND") and not is_answer("Not found.") and not is_answer(" ")
    assert is_answer("30 days") and is_answer("Notice: 30 days")


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii", categories=("L", "N", "Zs")), min_size=20, max_size=200),
       st.integers(0, 200), st.integers(3, 40))
def test_any_piece_of_a_page_is_grounded_on_it(page, start, length):
    piece = page[start:start + length]
    if len(fold(piece).strip(" ")) >= FUZZY_MIN_CHARS:
        assert ground(piece, page) is not None
    words = page.split()[start % 7:start % 7 + 3]
    if words:
        assert ground(" ".join(words), page).level == "exact"  # whole words, whatever the spacing


def test_number_formats_agree():
    assert numbers("4,213 and 4 213 and 4213 and 1,000,000") == ["4213", "4213", "4213", "1000000"]
    assert numbers("version 3.14, 12 items") == ["3.14", "12"]


def test_citation_text():
    plain = Citation(Path("report.pdf"), 12)
    assert cite(plain, name_file=False) == "(page 12)"
    assert cite(Citation(Path("report.pdf"), 12, "x"), name_file=False) == '(page 12, "x")'
    assert cite(Citation(Path("report.pdf"), 3, "3"), name_file=False) == "(page 3)"  # the label adds nothing
    assert cite(plain, name_file=True) == "(report.pdf, page 12)"
    assert cite(plain, name_file=False, grounded=False) == "(page 12, not found in the page text)"


def test_not_found_text():
    assert not_found([(Path("a.pdf"), 4), (Path("a.pdf"), 9), (Path("a.pdf"), 12)], name_file=False) == \
        "not found in pages 4, 9, 12"
    assert not_found([(Path("a.pdf"), 4), (Path("b.pdf"), 2)], name_file=True) == "not found in a.pdf page 4; b.pdf page 2"
    assert not_found([], name_file=False) == "not found (no page was read)"


def test_what_counts_as_a_text_layer():
    assert has_text("Invoice 42") and has_text("abc")
    assert not has_text("") and not has_text(" \n\f ") and not has_text("ab")
    assert not has_text("\ufffd\ufffd\ufffd\ufffd abc")  # glyphs without a Unicode mapping
