"""Grounding: an answer is on a page when its content words, each number with its unit, are together in one
passage of the page text, page numbers and running headers and footers aside (pure: wording.py, furniture.py,
grounding.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmcli.pipeline.docqa.furniture import bodies
from vlmcli.pipeline.docqa.grounding import ground, is_answer
from vlmcli.pipeline.docqa.wording import tokens

TERMS = "Payment is due within 45 days of the invoice date. Late payment costs 2 percent a month."


@pytest.mark.parametrize("answer", [
    "45 days", "45 Days.", "45 day", "forty-five days", "within 45 days", "the invoice date",
    "Payment is due within 45 days of the invoice date", "2 percent a month", "2%", "2 per cent", "two percent",
    "45", "2",
])
def test_what_the_payment_terms_do_say(answer):
    assert ground(answer, TERMS) is not None


@pytest.mark.parametrize("answer", [
    "2 weeks", "45 years", "The fee is 2 million dollars",  # the three: numbers on the page, words not
    "2 months", "2 days", "45 percent", "90 days", "Payment is due within 30 days", "the delivery date",
    "2 million", "not due", "45 days of the delivery date",
])
def test_what_the_payment_terms_do_not_say(answer):
    assert ground(answer, TERMS) is None


def test_a_page_number_is_no_evidence():
    page = bodies(["Page 1 of 12\nRevenue was 9 million"], [1])[0]
    assert page == "Revenue was 9 million"
    for wrong in ("Revenue was 1 million", "1", "12", "Revenue was 12 million", "Revenue was 9 billion"):
        assert ground(wrong, page) is None, wrong
    for right in ("Revenue was 9 million", "9 million", "9,000,000", "9M", "nine million", "9"):
        assert ground(right, page) is not None, right


@pytest.mark.parametrize(("page", "answer"), [
    ("Revenue was 9 million dollars.", "$9 million"),
    ("Revenue was 9 million dollars.", "$9M"),
    ("Revenue was 9 million dollars.", "USD 9 million"),
    ("Revenue was 9 million dollars.", "9,000,000 dollars"),
    ("Revenue was $9 million.", "9 million dollars"),
    ("Revenue was $9m.", "nine million dollars"),
    ("Payment is due within forty-five (45) days.", "45 days"),
    ("Payment is due within forty-five (45) days.", "forty-five days"),
    ("Payment is due within 45 days.", "Forty Five days"),
    ("Total due: 1,250.00 EUR", "1250 EUR"),
    ("Total due: 1,250.00 EUR", "EUR 1,250"),
    ("Total due: 1,250.00 EUR", "\u20ac1,250.00"),
    ("Total due: 1,250.00 EUR", "1 250 EUR"),
    ("Total due: 1,250.00 EUR", "total due"),
    ("The parties signed on 14 March 2027.", "March 14, 2027"),
    ("The parties signed on 14 March 2027.", "the 14th of March 2027"),
    ("Both Parties agree.", "both party"),
    ("ACME LTD., Berlin", "Acme Ltd"),
    ("Margin rose to 12.5% this year.", "12.5 percent"),
    ("A deposit of two thousand euros is held.", "2,000 euros"),
    ("Notice is given 30 to 45 days ahead.", "30 days"),
])
def test_paraphrases_that_say_the_same(page, answer):
    assert ground(answer, page) is not None


@pytest.mark.parametrize(("page", "answer"), [
    ("Revenue was 9 million dollars.", "9 million euros"),
    ("Revenue was 9 million dollars.", "\u20ac9 million"),
    ("Revenue was 9 million dollars.", "$9 billion"),
    ("Revenue was 9 million dollars.", "$90 million"),
    ("Revenue was 9 million.", "$9 million"),  # the page names no currency
    ("Total due: 1,250.00 EUR", "1,250.50 EUR"),
    ("Total due: 1,250.00 EUR", "125 EUR"),
    ("Total due: 1,250.00 EUR", "1250 USD"),
    ("Revenue was $4,213 million.", "$4,218 million"),  # numbers never match approximately
    ("Smoking is allowed.", "not allowed"),  # a negation is content
    ("The lease ends on 14 March 2027.", "14 May 2027"),
    ("Payment is due within 45 calendar days.", "45 days"),  # the unit is the word right after the number
])
def test_answers_that_say_something_else(page, answer):
    assert ground(answer, page) is None


REPORT = ("ANNUAL REPORT, eyes only\nTotal revenue for fiscal year 2023 was $4,213 million, up 7 per-\n"
          "cent on the year.\nChief executive: Jane O\u2019Neil\nThe e\ufb03ciency programme ended.")


@pytest.mark.parametrize(("answer", "level", "evidence"), [
    ("$4,213 million", "exact", "Total revenue"),
    ("  jane o'neil. ", "exact", "Chief executive"),  # case, quotes, edge punctuation
    ("Jane ONeil", "exact", "Chief executive"),
    ("7 percent", "exact", "Total revenue"),  # a word hyphenated across lines
    ("efficiency programme", "exact", "The e"),  # a ligature
    ("4213", "exact", "Total revenue"),  # the figure as printed, without its scale
    ("It was 4 213 million in 2023", "words", "Total revenue"),
    ("revenue 2023", "words", "Total revenue"),
])
def test_levels_and_evidence(answer, level, evidence):
    grounding = ground(answer, REPORT)
    assert grounding is not None and grounding.level == level and grounding.evidence.startswith(evidence)


@pytest.mark.parametrize("answer", ["John Smith", "2022", "$5,000", "Jo", "", "   ", "yes", "the", "it was",
                                    "eyes only 2022", "4,213 million euros"])
def test_answers_the_report_does_not_hold(answer):
    assert ground(answer, REPORT) is None


def test_an_ocr_slip_matches_approximately_and_says_so():
    grounding = ground("efficiency programme", "The efficincy programme ended.")
    assert grounding.level == "fuzzy" and 90 <= grounding.score < 100
    assert ground("Andersen", "Signed by Anderson.") is None  # two names, not a slip
    assert ground("lease", "at least") is None  # short words are not matched approximately


PEOPLE = ("Jane Doe is the chief executive.\nThe office is in Lyon.\nBob Roe is the treasurer.\n"
          "The auditor is Ina Berg.")


def test_a_passage_is_one_sentence_or_two_in_a_row():
    assert ground("Jane Doe, chief executive", PEOPLE).evidence == "Jane Doe is the chief executive."
    assert ground("Jane Doe, Lyon", PEOPLE).evidence == "Jane Doe is the chief executive. The office is in Lyon."
    assert ground("Jane Doe, treasurer", PEOPLE) is None  # two sentences apart
    assert ground("Ina Berg, chief executive", PEOPLE) is None


def test_wrapped_lines_join_and_short_lines_stand_alone():
    prose = ("The tenant shall pay the monthly rent of nine hundred euros on the first working day of each\n"
             "month to the account named in the annex, and the deposit of 1,800 EUR before moving in.")
    grounding = ground("nine hundred euros each month", prose)
    assert grounding is not None and grounding.evidence == " ".join(prose.split())
    form = "Name: Ada Moreau\nPolicy: PX-123456\nCity: Lyon\nAgent: Bruno Keller\nRenewal: 2027"
    assert ground("PX-123456", form).evidence == "Policy: PX-123456"
    assert ground("Policy PX-123456", form) is not None
    assert ground("Ada Moreau, Bruno Keller", form) is None  # four lines apart
    assert ground("Total due: 1,250.00 EUR", "Invoice 7\nTotal due\n1,250.00 EUR\nThank you") is not None
    paragraphs = ("Terms of payment for the supply of office equipment and furniture\n\n"
                  "All invoices are payable within 30 days\n\nDeliveries are made by the supplier's own courier\n"
                  "\nThe warranty covers two years")
    assert ground("office equipment payable within 30 days", paragraphs).evidence == (
        "Terms of payment for the supply of office equipment and furniture All invoices are payable within 30 days")
    assert ground("office equipment, courier", paragraphs) is None  # blank lines end paragraphs, lines wrap no more


def test_running_headers_footers_and_page_numbers_are_not_evidence():
    pages = [f"ACME Annual Report 2023\n{body}\n- {n} -" for n, body in enumerate(
        ["Revenue was 9 million dollars.", "Staff grew to 120 people.", "The board met 4 times.",
         "Costs fell by 3 percent."], start=1)]
    kept = bodies(pages, [1, 2, 3, 4])
    assert kept == ["Revenue was 9 million dollars.", "Staff grew to 120 people.", "The board met 4 times.",
                    "Costs fell by 3 percent."]
    assert ground("Annual report 2023", kept[1]) is None and ground("2", kept[1]) is None
    texts = ["Rent is 900 EUR.", "Keys: two.", "Pets are allowed.", "Signed in Lyon."]
    footers = bodies([f"{text}\nACME confidential, page {n + 10}" for n, text in enumerate(texts, 1)], [1, 2, 3, 4])
    assert footers == texts


def test_repeated_lines_with_their_own_numbers_are_content():
    receipts = [f"Receipt\nBread 2.10\nMilk 1.{n}0\nTotal {total}" for n, total in
                enumerate(["3.20", "12.50", "7.80", "9.99"], start=1)]
    kept = bodies(receipts, [1, 2, 3, 4])
    assert all(body.endswith(f"Total {total}") for body, total in zip(kept, ["3.20", "12.50", "7.80", "9.99"]))
    assert all(not body.startswith("Receipt") for body in kept)  # the same word on every page is furniture
    assert ground("12.50", kept[1]) is not None


def test_furniture_needs_three_pages_and_the_page_edges():
    texts = ["Rent is 900 EUR.", "Keys: two.", "Pets are allowed.", "Signed in Lyon."]
    two = bodies(["ACME Ltd\nRent is 900 EUR.\nPage 1 of 2", "ACME Ltd\nKeys: two.\nPage 2 of 2"], [1, 2])
    assert two == ["ACME Ltd\nRent is 900 EUR.", "ACME Ltd\nKeys: two."]  # a page number is one on any page
    assert bodies(["\nPage 1\n\nRent is 900 EUR.\n\nKeys: two.\n"], [1]) == ["Rent is 900 EUR.\n\nKeys: two."]
    middle = "Title\nIntro\nMore\nPage 3 of the contract lists the fees.\nEnd\nSigned\nDated"
    assert bodies([middle], [1]) == [middle]
    numbers = bodies([f"Heading\n{text}\n{n}" for n, text in zip((4, 5, 6, 7), texts)], [4, 5, 6, 7])
    assert numbers == texts
    totals = [f"{text}\n{value}" for text, value in zip(texts, (40, 17, 93, 5))]
    assert bodies(totals, [1, 2, 3, 4]) == totals


def test_not_found_replies_are_not_answers():
    assert not is_answer("NOT FOUND") and not is_answer("Not found.") and not is_answer(" ")
    assert is_answer("30 days") and is_answer("Notice: 30 days")


def test_numbers_are_compared_as_values():
    def values(text: str) -> list[str]:
        return [token.text for token in tokens(text) if token.kind == "number"]

    assert values("4,213 and 4 213 and 4213 and 1,000,000") == ["4213", "4213", "4213", "1000000"]
    assert values("version 3.14, 12 items, 1,250.00 EUR, 12,5") == ["3.14", "12", "1250", "12", "5"]
    assert values("$9M, 9 million, nine million, 9 mn, 2.5bn, $10k") == [
        "9000000", "9000000", "9000000", "9000000", "2500000000", "10000"]
    assert values("a 9m wall, 3rd floor, twenty-one") == ["9", "3", "21"]  # "9m" alone is metres
    assert [t.text for t in tokens("EUR 900 and $5")] == ["900", "euro", "and", "5", "dollar"]


WORDS = ["lease", "tenant", "deposit", "invoice", "meeting", "budget", "office", "courier", "ledger", "harbour"]


# A number is always followed by a word: "12 345" would be one number, 12345, thousands grouped by a space.
_COUNTED = st.tuples(st.integers(0, 10**6).map(str), st.sampled_from(WORDS)).map(list)
_SENTENCE = st.lists(st.one_of(st.sampled_from(WORDS).map(lambda word: [word]), _COUNTED), min_size=2, max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(_SENTENCE.map(lambda parts: sum(parts, [])), min_size=1, max_size=6), st.integers(0, 100),
       st.integers(1, 5))
def test_any_run_of_words_of_a_sentence_is_grounded_exactly(sentences, start, length):
    page = "\n".join(" ".join(words).capitalize() + "." for words in sentences)
    words = sentences[start % len(sentences)]
    piece = words[start % len(words):start % len(words) + length]
    grounding = ground(" ".join(piece), page)
    assert grounding is not None and grounding.level == "exact", (piece, page)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=2, max_size=10), st.integers(1, 10**6), st.sampled_from(WORDS))
def test_another_number_before_the_same_word_is_not_grounded(words, number, unit):
    page = f"{' '.join(words)} {number} {unit}."
    assert ground(f"{number} {unit}", page) is not None
    assert ground(f"{number + 1} {unit}", page) is None
