"""The synthetic dataset generator: determinism, disjoint splits, readable JSONL, legibility by design."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vlmcli.finetune.data import load_examples

from tools.synthetic import (
    Counts,
    FontsMissing,
    random_look,
    random_receipt,
    random_text,
    render_line,
    render_page,
    require_fonts,
    write_dataset,
)
from tools.synthetic.__main__ import main
from tools.synthetic.render import (
    MAX_BLUR_RADIUS_PX,
    MAX_NOISE_SIGMA,
    MAX_ROTATION_DEG,
    PAGE_TEXT_FRACTION,
    page_text_size_px,
)
from tools.synthetic.text import CHARSET, fresh_text

COUNTS = Counts(lines=30, hand=20, pages=3, receipts=4, heldout=8)
MAX_CHARS = 20
CANVAS_PX = (768, 768)


@pytest.fixture(scope="module")
def fonts():
    try:
        return require_fonts()
    except FontsMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def dataset(fonts, tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("synth")
    write_dataset(out_dir, fonts, COUNTS, seed=3, max_chars=MAX_CHARS, canvas_px=CANVAS_PX)
    return out_dir


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def texts(out_dir: Path, pattern: str) -> set[str]:
    return {line for path in out_dir.glob(pattern) for r in records(path) if "text" in r
            for line in r["text"].split("\n")}


def ink_rows(image: Image.Image) -> np.ndarray:
    return np.flatnonzero((np.asarray(image) < 128).any(axis=1))


def test_every_file_is_written_and_reads_without_problems(dataset):
    expected = {"lines_train": 30, "hand_train": 20, "pages_train": 3, "qa_train": 12, "lines_heldout": 8,
                "lines_heldout_newfont": 8, "hand_heldout": 8, "hand_heldout_newfont": 8, "pages_heldout": 8,
                "qa_heldout": 24}
    assert {p.stem for p in dataset.glob("*.jsonl")} == set(expected)
    for stem, count in expected.items():
        examples, problems = load_examples(dataset / f"{stem}.jsonl")
        assert problems == [] and len(examples) == count
        assert {e.kind for e in examples} == {"qa" if stem.startswith("qa") else "transcription"}


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(dataset, fonts, tmp_path):
    write_dataset(tmp_path / "again", fonts, COUNTS, seed=3, max_chars=MAX_CHARS, canvas_px=CANVAS_PX)
    write_dataset(tmp_path / "other", fonts, COUNTS, seed=4, max_chars=MAX_CHARS, canvas_px=CANVAS_PX)

    def digest(out_dir: Path) -> dict[str, str]:
        files = [*out_dir.glob("*.jsonl"), out_dir / "manifest.json", *out_dir.glob("images/*/*.png")]
        return {str(p.relative_to(out_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    assert digest(tmp_path / "again") == digest(dataset)
    assert (tmp_path / "other" / "lines_train.jsonl").read_bytes() != (dataset / "lines_train.jsonl").read_bytes()


def test_heldout_strings_never_occur_in_training(dataset):
    train = texts(dataset, "*_train.jsonl")
    heldout = texts(dataset, "*_heldout*.jsonl")
    assert heldout and train.isdisjoint(heldout)
    invoices = {stem: {r["answer"] for r in records(dataset / f"{stem}.jsonl") if "invoice" in r["question"]}
                for stem in ("qa_train", "qa_heldout")}
    assert len(invoices["qa_heldout"]) == COUNTS.heldout and invoices["qa_train"].isdisjoint(invoices["qa_heldout"])


def test_newfont_files_use_only_heldout_fonts_and_training_never_does(dataset, fonts):
    heldout = {f.name for f in fonts.heldout}
    assert {f.style for f in fonts.heldout} == {"printed", "hand"}
    for path in dataset.glob("*.jsonl"):
        used = {r["font"] for r in records(path)}
        assert used <= heldout if path.stem.endswith("newfont") else used.isdisjoint(heldout), path.name


def test_texts_stay_in_the_charset_and_length_and_caps_fonts_get_capitals(dataset, fonts):
    caps_fonts = {f.name for f in fonts.train + fonts.heldout if f.caps_only}
    for path in dataset.glob("*.jsonl"):
        for r in records(path):
            for line in r.get("text", r.get("answer", "")).split("\n"):
                assert set(line) <= CHARSET and 0 < len(line) <= MAX_CHARS, line
                assert r["font"] not in caps_fonts or line == line.upper()


def test_pages_are_large_with_small_text_legible_only_in_tiles(dataset):
    for r in records(dataset / "pages_train.jsonl"):
        page = Image.open(dataset / r["image"])
        assert page.size == CANVAS_PX
        rows = ink_rows(page)
        line_count = r["text"].count("\n") + 1
        # a line's ink: at least 6 px at full size (legible in a 1/4 tile), under 1/25 of the page
        assert 6 <= (rows[-1] - rows[0] + 1) / line_count <= CANVAS_PX[1] / 25


def test_page_text_height_shrinks_below_legibility_on_the_whole_page(fonts):
    rng = np.random.default_rng(0)
    sizes = [page_text_size_px(rng, (1024, 1024)) for _ in range(200)]
    assert 1024 * PAGE_TEXT_FRACTION[0] - 1 <= min(sizes) and max(sizes) <= 1024 * PAGE_TEXT_FRACTION[1] + 1
    page = render_page(["Total 48.20"], fonts.train[0].path, max(sizes), rng, (1024, 1024))
    rows = ink_rows(page)
    ink_px = rows[-1] - rows[0] + 1
    assert ink_px >= 10  # at full resolution, as in a tile of the split page
    assert ink_px * 256 / 1024 < 6  # the whole page at 256 px: a few pixels, unreadable


def test_receipt_answers_are_its_printed_fields_and_the_total_adds_up():
    seen: set[str] = set()
    for seed in range(50):
        receipt = random_receipt(np.random.default_rng(seed), seen)
        printed = {text for row in receipt.rows for text in row}
        assert all(answer in printed for _, answer in receipt.qa)
        cents = sum(int(amount.replace(",", "").replace(".", "")) for _, amount in receipt.items)
        assert receipt.total == f"${cents // 100:,}.{cents % 100:02d}"
    assert len(seen) == 50


def test_looks_and_lines_stay_within_bounds(fonts):
    rng = np.random.default_rng(1)
    looks = [random_look(rng) for _ in range(500)]
    assert max(abs(look.rotation_deg) for look in looks) <= MAX_ROTATION_DEG
    assert max(look.noise_sigma for look in looks) <= MAX_NOISE_SIGMA
    assert max(look.blur_radius_px for look in looks) <= MAX_BLUR_RADIUS_PX
    for font in fonts.train + fonts.heldout:
        image = render_line("Invoice 2024-03-15 $9.50", font.path, 24, rng)
        pixels = np.asarray(image)
        assert image.mode == "L" and 20 <= image.height <= 80
        assert np.median(pixels) > 180 and pixels.min() < 100, font.name  # paper dominates, ink is there


def test_random_text_respects_max_chars_and_fresh_text_never_repeats():
    rng = np.random.default_rng(2)
    for max_chars in (8, 12, 24):
        assert all(len(random_text(rng, max_chars)) <= max_chars for _ in range(300))
    seen = {"already"}
    made = [fresh_text(rng, seen, 16) for _ in range(300)]
    assert len(set(made)) == 300 and "already" not in made
    with pytest.raises(ValueError):
        random_text(rng, 4)


def test_no_fonts_names_the_apt_packages(tmp_path):
    with pytest.raises(FontsMissing, match="apt-get install -y fonts-dejavu-core .*fonts-dkg-handwriting"):
        require_fonts([tmp_path])


def test_command_writes_a_dataset(fonts, tmp_path, capsys):
    assert main([str(tmp_path), "--lines", "2", "--hand", "1", "--pages", "1", "--receipts", "1",
                 "--heldout", "1", "--canvas-px", "512", "512"]) == 0
    assert "held-out fonts:" in capsys.readouterr().out
    assert json.loads((tmp_path / "manifest.json").read_text())["files"]["qa_train.jsonl"] == 3


def test_no_torch_import():
    code = "import sys, tools.synthetic.__main__; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_fixed_canvases_and_random_character_lines(fonts, tmp_path):
    from tools.synthetic.write import Scale

    scale = Scale(canvas_px=(512, 512), page_text_px=(14, 20), line_text_px=(14, 20), line_canvas_px=(256, 64),
                  receipt_canvas_px=(384, 384), random_chars_share=1.0)
    write_dataset(tmp_path, fonts, Counts(lines=30, hand=0, pages=2, receipts=2, heldout=5), max_chars=12, scale=scale)
    sizes = {name: {Image.open(tmp_path / r["image"]).size for r in records(tmp_path / f"{name}.jsonl")}
             for name in ("lines_train", "lines_heldout", "pages_train", "qa_train")}
    assert sizes == {"lines_train": {(256, 64)}, "lines_heldout": {(256, 64)}, "pages_train": {(512, 512)},
                     "qa_train": {(384, 384)}}
    train, heldout = texts(tmp_path, "lines_train.jsonl"), texts(tmp_path, "lines_heldout.jsonl")
    assert all(set(t) <= CHARSET - {" "} and 1 <= len(t) <= 12 for t in train)  # random characters, no spaces
    assert not train & heldout


def test_tiny_model_tokenizer_spells_answers_and_shortens_instructions(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from tools.models.__main__ import reader_instructions
    from tools.models.build import build_learn_to_read
    from vlmcli.prompts import OCR_PROMPT

    build_learn_to_read(tmp_path / "m", reader_instructions(), longest_edge_px=256)
    tokenizer = AutoProcessor.from_pretrained(tmp_path / "m").tokenizer
    answer = "INV-48213 $12.50\n2.4.2021"
    assert tokenizer.decode(tokenizer(answer).input_ids) == answer
    assert len(tokenizer(answer).input_ids) >= len(answer) - 4  # nearly one token per character
    assert len(tokenizer(OCR_PROMPT).input_ids) < len(OCR_PROMPT) / 5
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "m")
    assert model.config.model_type == "idefics3" and sum(p.numel() for p in model.parameters()) < 5_000_000
