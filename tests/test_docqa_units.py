"""The pure parts of questions over documents: ranking (bm25s), citations, text layers (grounding:
test_docqa_grounding.py)."""

from __future__ import annotations

from pathlib import Path

from vlmcli.pipeline.docqa.citation import Citation, cite, not_found
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


def test_citation_text():
    plain = Citation(Path("report.pdf"), 12, checked_against="text_layer")
    assert cite(plain, name_file=False) == "(page 12)"
    assert cite(Citation(Path("report.pdf"), 12, "x", checked_against="text_layer"), name_file=False) == \
        '(page 12, "x")'
    assert cite(Citation(Path("report.pdf"), 3, "3", checked_against="text_layer"), name_file=False) == \
        "(page 3)"  # the label adds nothing
    assert cite(plain, name_file=True) == "(report.pdf, page 12)"
    assert cite(plain, name_file=False, grounded=False) == "(page 12, not found in the page text)"


def test_a_citation_checked_against_a_transcription_says_so():
    scan = Citation(Path("scan.pdf"), 2, checked_against="transcription")
    assert cite(scan, name_file=False) == "(page 2, in the model's own transcription of it)"
    assert cite(scan, name_file=False, grounded=False) == "(page 2, not found in the model's own transcription of it)"
    blank = Citation(Path("scan.pdf"), 3)
    assert cite(blank, name_file=False, grounded=False) == "(page 3, no page text to check the answer against)"
    assert scan.record()["checked_against"] == "transcription" and blank.record()["checked_against"] is None


def test_not_found_text():
    assert not_found([(Path("a.pdf"), 4), (Path("a.pdf"), 9), (Path("a.pdf"), 12)], name_file=False) == \
        "not found in pages 4, 9, 12"
    assert not_found([(Path("a.pdf"), 4), (Path("b.pdf"), 2)], name_file=True) == "not found in a.pdf page 4; b.pdf page 2"
    assert not_found([], name_file=False) == "not found (no page was read)"


def test_what_counts_as_a_text_layer():
    assert has_text("Invoice 42") and has_text("abc")
    assert not has_text("") and not has_text(" \n\f ") and not has_text("ab")
    assert not has_text("\ufffd\ufffd\ufffd\ufffd abc")  # glyphs without a Unicode mapping
