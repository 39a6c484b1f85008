"""A model's transcription laid onto first-pass word boxes (vlmcli/words/align.py): matches, misreads, words
only one reader saw, runs split differently, whole lines the first pass missed (pure; no engine)."""

from __future__ import annotations

import pytest

from vlmcli.words import PageWords, Word, iou
from vlmcli.words.align import align, fold, model_tokens

LINE_HEIGHT = 12.0


def _first_pass(lines: list[str], char_pt: float = 6.0, top: float = 72.0, gap: float = 20.0) -> PageWords:
    """First-pass words on a 612 x 792 page: each line at x=72, one char = `char_pt` wide, one space between."""
    words = []
    for line_number, line in enumerate(lines):
        x, y = 72.0, top + line_number * gap
        for text in line.split():
            words.append(Word(text, (x, y, x + len(text) * char_pt, y + LINE_HEIGHT), 0.9, line_number))
            x += (len(text) + 1) * char_pt
    return PageWords(612.0, 792.0, tuple(words), "tesseract 5.3.0", 200.0)


def _boxes(page: PageWords) -> dict[str, tuple]:
    return {word.text: word.bbox_pt for word in page.words}


def test_equal_words_take_the_first_pass_boxes_and_confidences():
    first = _first_pass(["Total revenue was 4,213 million"])
    placed = align("Total revenue was 4,213 million", first)
    assert [w.text for w in placed.words] == ["Total", "revenue", "was", "4,213", "million"]
    assert all(p.bbox_pt == f.bbox_pt and p.confidence == 0.9 for p, f in zip(placed.words, first.words))


def test_a_substitution_keeps_the_model_s_word_on_the_misread_box():
    first = _first_pass(["Total revenue was 4,2l3 rnillion"])
    placed = align("Total revenue was 4,213 million", first)
    assert [w.text for w in placed.words][-2:] == ["4,213", "million"]
    assert _boxes(placed)["million"] == first.words[4].bbox_pt and _boxes(placed)["4,213"] == first.words[3].bbox_pt


def test_a_deleted_word_is_dropped_and_an_inserted_word_goes_in_the_gap():
    first = _first_pass(["The notice period is 30 days ."])  # "." only the first pass saw
    placed = align("The notice period is 30 calendar days", first)  # "calendar" only the model saw
    assert [w.text for w in placed.words] == ["The", "notice", "period", "is", "30", "calendar", "days"]
    calendar = placed.words[5]
    assert calendar.confidence is None
    before, after = _boxes(first)["30"], _boxes(first)["days"]
    assert before[2] <= calendar.bbox_pt[0] < calendar.bbox_pt[2] <= after[0]
    assert calendar.bbox_pt[1] == before[1] and calendar.bbox_pt[3] == before[3]


def test_an_insertion_at_the_end_of_a_line_goes_after_its_last_word():
    first = _first_pass(["Total due", "Thank you"])
    placed = align("Total due 120 EUR\nThank you", first)
    due, amount, currency = (_boxes(placed)[t] for t in ("due", "120", "EUR"))
    assert due[2] < amount[0] < amount[2] < currency[0] and amount[1] == due[1]


def test_runs_split_differently_share_the_boxes_by_characters():
    first = _first_pass(["revenue 4, 213 million", "end of report"])  # one number read as two words
    placed = align("revenue 4,213 million\nendof report", first)  # two words written as one
    number, merged = _boxes(placed)["4,213"], _boxes(placed)["endof"]
    assert (number[0], number[2]) == pytest.approx((first.words[1].bbox_pt[0], first.words[2].bbox_pt[2]))
    assert (merged[0], merged[2]) == pytest.approx((first.words[4].bbox_pt[0], first.words[5].bbox_pt[2]))
    split = align("revenue 4 , 213 million", _first_pass(["revenue 4,213 million"]))
    four, comma = _boxes(split)["4"], _boxes(split)[","]
    whole = _first_pass(["revenue 4,213 million"]).words[1].bbox_pt
    assert whole[0] == pytest.approx(four[0]) and four[2] <= comma[0] + 1e-6 and comma[2] <= whole[2] + 1e-6


def test_a_line_the_first_pass_missed_goes_between_the_lines_around_it():
    first = _first_pass(["Invoice 7", "Total 120"], gap=40.0)
    placed = align("Invoice 7\nPaid by card\nTotal 120", first)
    above, below = _boxes(first)["7"], _boxes(first)["Total"]
    for text in ("Paid", "by", "card"):
        box = _boxes(placed)[text]
        assert above[3] <= box[1] < box[3] <= below[1], text
    assert _boxes(placed)["Paid"][0] == pytest.approx(72.0)  # the text's left edge


def test_words_before_the_first_anchor_go_to_its_left_within_the_page():
    placed = align("Dear Sir report follows", _first_pass(["report follows"]))
    dear, sir, report = (_boxes(placed)[t] for t in ("Dear", "Sir", "report"))
    assert 0 <= dear[0] < dear[2] <= sir[0] < sir[2] <= report[0]


def test_no_word_in_common_places_nothing_and_markup_is_not_a_word():
    assert align("completely different words", _first_pass(["Invoice 7"])).words == ()
    assert [t.text for t in model_tokens("| **Total** | 120 |\n|---|---|\n# Report")] == ["Total", "120", "Report"]
    assert fold("Ünïcode,") == "ünïcode" and fold("4,213") == "4213"


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
