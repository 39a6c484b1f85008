"""Pure parts: page ranges, band geometry, band merging, repetition detection, prompts."""

import pytest

from vlmcli.errors import UsageError
from vlmcli.inputs.documents import parse_pages
from vlmcli.inputs.geometry import pdf_render_dpi, plan_bands
from vlmcli.model.repetition import loop_start
from vlmcli.pipeline.bands import merge_band_texts
from vlmcli.prompts import (
    HANDWRITING_PROMPT,
    OCR_PROMPT,
    user_messages,
)


@pytest.mark.parametrize("text, count, expected", [
    ("1", 3, [0]), ("1-3,7", 9, [0, 1, 2, 6]), ("3,1,3", 3, [0, 2]), ("2-", 4, [1, 2, 3]),
    ("-2", 4, [0, 1]), (" 1 - 2 , 4 ", 4, [0, 1, 3]),
])
def test_parse_pages(text, count, expected):
    assert parse_pages(text, count) == expected


@pytest.mark.parametrize("text, message", [
    ("0", "not a valid range"), ("5-3", "not a valid range"), ("9", "past the end (the document has 3 pages)"),
    ("a", "not a page number"), ("1,,2", "not a page number"), ("", "not a page number"),
])
def test_parse_pages_rejects(text, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_pages(text, 3)


def test_small_pages_are_one_band():
    plan = plan_bands(1240, 1754, 2048, 0.12)
    assert plan.rows_px == ((0, 1754),) and plan.size_px == (1240, 1754)


def test_wide_pages_are_not_banded():
    assert len(plan_bands(6000, 2000, 2048, 0.12).rows_px) == 1


@pytest.mark.parametrize("width, height", [(2480, 3508), (600, 8000), (2048, 2600), (300, 30000), (4000, 9000)])
def test_bands_cover_the_page_within_the_model_input(width, height):
    plan = plan_bands(width, height, 2048, 0.12)
    new_width, new_height = plan.size_px
    assert new_width <= 2048 and len(plan.rows_px) > 1
    assert plan.rows_px[0][0] == 0 and plan.rows_px[-1][1] == new_height
    for (top, bottom), (next_top, _) in zip(plan.rows_px, plan.rows_px[1:]):
        assert bottom - top <= 2048
        assert next_top < bottom, "consecutive bands must overlap"
        assert bottom - next_top >= 0.12 * 2048 * 0.9


def test_pdf_dpi_fits_a4_to_the_model_input():
    assert pdf_render_dpi(8.27, 11.69, 2048, bands=True) == pytest.approx(2048 / 11.69)
    assert pdf_render_dpi(8.5, 11, 2048, bands=False) == pytest.approx(2048 / 11)


def test_pdf_dpi_keeps_receipts_legible_with_bands():
    receipt_dpi = pdf_render_dpi(3.15, 40.0, 2048, bands=True)
    assert receipt_dpi == pytest.approx(2048 / 11.69)  # the resolution an A4 page gets
    assert pdf_render_dpi(3.15, 40.0, 2048, bands=False) == pytest.approx(2048 / 40)
    poster_dpi = pdf_render_dpi(33.1, 46.8, 2048, bands=True)
    assert poster_dpi * 33.1 == pytest.approx(2048)  # width capped at the model's input


def test_pdf_dpi_is_capped_for_pixel_budget_edges():
    """A Qwen-style budget's edge (4096 px) would render A4 at 350 dpi: the cap holds it at 200, bands or not; an
    edge that already fits stays as it was."""
    assert pdf_render_dpi(8.27, 11.69, 4096, bands=False) == pytest.approx(4096 / 11.69)
    for bands in (True, False):
        assert pdf_render_dpi(8.27, 11.69, 4096, bands, max_dpi=200) == 200
        assert pdf_render_dpi(8.27, 11.69, 2048, bands, max_dpi=200) == pytest.approx(2048 / 11.69)
    assert pdf_render_dpi(3.15, 40.0, 4096, bands=True, max_dpi=200) == 200  # a receipt, banded


def test_merge_drops_lines_repeated_in_the_overlap():
    bands = ["Invoice 42\nDate: 2024-01-01\nItem A 10.00\nItem B 5.0",
             "Item A 10.00\nItem B 5.00\nTotal 15.00"]
    assert merge_band_texts(bands) == "Invoice 42\nDate: 2024-01-01\nItem A 10.00\nItem B 5.00\nTotal 15.00"


def test_merge_keeps_everything_without_overlap():
    assert merge_band_texts(["one\ntwo", "three\nfour"]) == "one\ntwo\nthree\nfour"


def test_repetition_fires_on_a_looping_line():
    line = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    tokens = [1, 2, 3] + line * 5
    assert loop_start(tokens, min_tokens=64, min_repeats=4) == 3 + len(line)


def test_repetition_ignores_distinct_text_and_short_repeats():
    assert loop_start(list(range(500)), 64, 4) is None
    assert loop_start([1, 2] * 10, 64, 4) is None  # 20 tokens of "| |" is a table, not a loop


def test_ocr_instruction_presets():
    from vlmcli.model.families.idefics import DOCTAGS_FAMILY, SMOLVLM

    assert SMOLVLM.instruction(None, False) == OCR_PROMPT
    assert SMOLVLM.instruction(None, True) == HANDWRITING_PROMPT
    assert SMOLVLM.instruction("Read the table.", True) == "Read the table."
    assert DOCTAGS_FAMILY.instruction() == DOCTAGS_FAMILY.instruction(None, True) == "Convert this page to docling."


def test_user_messages_put_images_first():
    messages = user_messages("What is the total?", 2)
    assert messages == [{"role": "user", "content": [
        {"type": "image"}, {"type": "image"}, {"type": "text", "text": "What is the total?"}]}]
