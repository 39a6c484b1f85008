"""Hypothesis properties of every input path: image loader, page ranges, bands and merge, JSON, repetition."""

from __future__ import annotations

import difflib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from vlmcli.errors import InputError, UsageError
from vlmcli.inputs import images
from vlmcli.inputs.documents import parse_pages
from vlmcli.inputs.geometry import plan_bands
from vlmcli.jobs.outputs import render
from vlmcli.model.repetition import loop_start
from vlmcli.pipeline.bands import MERGE_SIMILARITY, merge_band_texts
from vlmcli.pipeline.results import PageResult
from vlmcli.specs import OutputFormat
from vlmcli.text import normalize

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PIXEL_BUDGET = 64 * 64  # a small Image.MAX_IMAGE_PIXELS, so "over the budget" is cheap to reach


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@st.composite
def image_files(draw) -> bytes:
    """Valid files of every allowed format and many modes and sizes, some of them cut short or corrupted."""
    fmt, modes = draw(st.sampled_from([("PNG", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]),
                                       ("TIFF", ["1", "L", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]),
                                       ("JPEG", ["L", "RGB", "CMYK"]), ("GIF", ["L", "P"]),
                                       ("BMP", ["1", "L", "RGB"]), ("WEBP", ["RGB", "RGBA"])]))
    mode = draw(st.sampled_from(modes))
    size = (draw(st.integers(1, 96)), draw(st.integers(1, 96)))
    data = _encode(Image.new(mode, size, draw(st.integers(0, 255))), fmt)
    damage = draw(st.sampled_from(["none", "truncate", "flip"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "flip":
        position = draw(st.integers(0, len(data) - 1))
        data = data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:]
    return data


@SETTINGS
@given(data=st.one_of(st.binary(max_size=2048), image_files()))
def test_loader_returns_rgb_within_budget_or_an_input_error(monkeypatch_session, data):
    try:
        image = images.load_image_bytes(data)
    except InputError:
        return
    assert image.mode == "RGB" and image.width * image.height <= PIXEL_BUDGET


@pytest.fixture(scope="module")
def monkeypatch_session():
    patcher = pytest.MonkeyPatch()
    patcher.setattr(Image, "MAX_IMAGE_PIXELS", PIXEL_BUDGET)
    yield
    patcher.undo()


def _as_ranges(indexes: list[int]) -> str:
    """0-based indexes → '1-3,5' (1-based), ranges where pages follow each other."""
    parts, start = [], None
    for position, index in enumerate(indexes):
        if start is None:
            start = index
        if position + 1 == len(indexes) or indexes[position + 1] != index + 1:
            parts.append(f"{start + 1}-{index + 1}" if index > start else f"{index + 1}")
            start = None
    return ",".join(parts)


@SETTINGS
@given(page_count=st.integers(1, 60), data=st.data())
def test_page_ranges_round_trip(page_count, data):
    indexes = sorted(data.draw(st.sets(st.integers(0, page_count - 1), min_size=1)))
    text = _as_ranges(indexes)
    assert parse_pages(text, page_count) == indexes
    assert parse_pages(text.replace(",", " , "), page_count) == indexes  # spaces are allowed
    assert parse_pages(f"{indexes[0] + 1}-", page_count) == list(range(indexes[0], page_count))


@SETTINGS
@given(page_count=st.integers(1, 60), text=st.one_of(
    st.integers(-5, 0).map(str),  # page 0 or negative
    st.integers(61, 10_000).map(str),  # past the end
    st.tuples(st.integers(2, 60), st.integers(1, 59)).filter(lambda r: r[1] < r[0]).map(lambda r: f"{r[0]}-{r[1]}"),
    st.text(st.characters(exclude_characters="0123456789"), min_size=0, max_size=8),
    st.just(""), st.just(","), st.just("1,,2"), st.just("--"), st.just("1-2-3")))
def test_page_ranges_reject_what_they_must(page_count, text):
    try:
        indexes = parse_pages(text, page_count)
    except UsageError as error:
        assert error.message.startswith("--pages")
        return
    # Whatever is accepted must name real pages, in order, once each.
    assert indexes == sorted(set(indexes)) and all(0 <= i < page_count for i in indexes)
    assert any(ch.isdigit() for ch in text)


@SETTINGS
@given(width=st.integers(1, 6000), height=st.integers(1, 20000), max_edge=st.integers(16, 2048),
       overlap=st.floats(0.0, 0.5))
def test_bands_cover_every_pixel_row_and_fit_the_model(width, height, max_edge, overlap):
    plan = plan_bands(width, height, max_edge, overlap)
    page_width, page_height = plan.size_px
    rows = plan.rows_px
    assert rows[0][0] == 0 and rows[-1][1] == page_height
    assert all(next_top <= bottom for (_, bottom), (next_top, _) in zip(rows, rows[1:]))  # no gap
    assert all(0 <= top < bottom <= page_height for top, bottom in rows)
    if len(rows) > 1:
        assert page_width <= max_edge and all(bottom - top <= max_edge for top, bottom in rows)


@st.composite
def distinct_lines(draw) -> list[str]:
    words = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_categories=("Cs", "Cc", "Zl", "Zp")),
                    min_size=1, max_size=12)
    lines = draw(st.lists(st.lists(words, min_size=1, max_size=6).map(" ".join), min_size=1, max_size=25))
    normalized = [normalize(line) for line in lines]
    # The merge matches fuzzily (OCR of one line differs a little between bands): lines that
    # read alike to it are one line by design, so the property is about lines it can tell apart.
    assume(all(normalized))
    for i, a in enumerate(normalized):
        for b in normalized[i + 1:]:
            assume(difflib.SequenceMatcher(None, a, b).ratio() < MERGE_SIMILARITY)
    return lines


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(lines=distinct_lines(), data=st.data())
def test_merge_never_drops_or_duplicates_a_line(lines, data):
    """Bands overlap by at least one line: merging their texts gives every line once, in order."""
    windows, start, end = [], 0, 0
    while end < len(lines):
        end = data.draw(st.integers(max(start, end) + 1, len(lines)))  # each band reaches further down
        windows.append(lines[start:end])
        start = data.draw(st.integers(start + 1, end - 1)) if end - 1 > start else end - 1
        # the next band starts inside this one: lines start..end-1 are read twice
    assert merge_band_texts(["\n".join(window) for window in windows]).split("\n") == lines


@SETTINGS
@given(text=st.text(), fmt=st.sampled_from(list(OutputFormat)))
def test_output_round_trips_any_unicode(text, fmt):
    """JSON: any text, lone surrogates included, parses back as it was; every format is valid UTF-8."""
    page = PageResult(Path("a.pdf"), 1, text, 1, 1, 0.0, "stop")
    chunk = render(page, fmt, True)
    chunk.encode("utf-8")
    if fmt is OutputFormat.json:
        assert chunk.endswith("\n") and chunk.count("\n") == 1 and json.loads(chunk)["text"] == text


@SETTINGS
@given(text=st.text(st.characters(categories=["Cs"]) | st.characters(), min_size=1))
def test_json_keeps_lone_surrogates_as_escapes(text):
    chunk = render(PageResult(Path("a"), 1, text, 1, 1, 0.0, "stop"), OutputFormat.json, True)
    assert json.loads(chunk)["text"] == text


MIN_TOKENS, MIN_REPEATS = 64, 4
NEWLINE = 0


@SETTINGS
@given(lines=st.lists(st.lists(st.integers(1, 50), min_size=1, max_size=MIN_TOKENS - 2).map(tuple), unique=True,
                      max_size=12), step=st.integers(1, 9))
def test_repetition_detector_never_fires_on_distinct_lines(lines, step):
    """Lines shorter than the detector's span, none the same: no loop, at any point of the generation."""
    tokens = [token for line in lines for token in (*line, NEWLINE)]
    for end in [*range(0, len(tokens), step), len(tokens)]:
        assert loop_start(tokens[:end], MIN_TOKENS, MIN_REPEATS) is None


@SETTINGS
@given(prefix=st.lists(st.integers(1, 50), max_size=80), line=st.lists(st.integers(1, 50), min_size=1, max_size=40),
       extra=st.integers(0, 3))
def test_repetition_detector_fires_on_a_line_repeated_past_its_threshold(prefix, line, extra):
    unit = [*line, NEWLINE]
    before = [*prefix, NEWLINE]
    assume(before[-len(unit):] != unit)  # else the loop starts inside the prefix (and is cut there, rightly)
    repeats = max(MIN_REPEATS, -(-MIN_TOKENS // len(unit))) + extra
    tokens = [*before, *unit * repeats]
    assert loop_start(tokens, MIN_TOKENS, MIN_REPEATS) == len(before) + len(unit)  # the text before, and one copy
