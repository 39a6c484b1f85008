"""DocTags checkpoints (granite-docling, SmolDocling): recognised from their files, decoded with their tags and
a KV cache, and converted to Markdown, HTML, JSON, CSV tables and searchable PDFs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from conftest import draw_page
from tools.models.build import build_docling_checkpoint
from vlmcli.cli import app
from vlmcli.errors import ExitCode
from vlmcli.jobs import doctags
from vlmcli.model.profile import load_profile
from vlmcli.specs import DOCTAGS_TRANSCRIPTION
from vlmcli.model.repetition import loop_start
from vlmcli.prompts import DOCTAGS_PROMPT
from vlmcli.specs import DOCTAGS_REPETITION_MIN_TOKENS, DType, ModelSpec, RunSpec

runner = CliRunner()
WIDTH_PX = HEIGHT_PX = 320
CELLS = [["Item", "Q2", "Q3"], ["Sales", "10", "12"], ["Costs", "7", "8"]]


def _loc(x0, y0, x1, y1) -> str:
    return "".join(f"<loc_{round(500 * v / WIDTH_PX)}>" for v in (x0, y0, x1, y1))


PAGE_DOCTAGS = ("<doctag><section_header_level_1>" + _loc(20, 15, 140, 27) + "Quarterly Report</section_header_level_1>"
                "<text>" + _loc(20, 45, 230, 57) + "Revenue grew in the third quarter.</text>"
                "<otsl>" + _loc(20, 90, 290, 160)
                + "".join("".join(("<ched>" if r == 0 else "<fcel>") + cell for cell in row) + "<nl>"
                          for r, row in enumerate(CELLS)) + "</otsl></doctag>")


@pytest.fixture(scope="module")
def tiny_granite(tmp_path_factory) -> Path:
    return build_docling_checkpoint(tmp_path_factory.mktemp("granite"), "granite")


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    page = Image.new("RGB", (WIDTH_PX, HEIGHT_PX), "white")
    draw = ImageDraw.Draw(page)
    draw.text((20, 15), "Quarterly Report", fill="black")
    draw.text((20, 45), "Revenue grew in the third quarter.", fill="black")
    for r, row in enumerate(CELLS):
        for c, cell in enumerate(row):
            draw.text((20 + 90 * c, 90 + 25 * r), cell, fill="black")
    page.save(folder / "report.png")
    (folder / "train.jsonl").write_text(json.dumps({"image": "report.png", "text": PAGE_DOCTAGS}) + "\n")
    return folder / "report.png"


@pytest.fixture(scope="module")
def taught_granite(tiny_granite, report_page, tmp_path_factory) -> Path:
    """The tiny granite-docling model after `finetune --full` on the report page: it writes the page's DocTags.

    One thread: on a model this small, a second one only waits for the first (and on a busy machine it waits
    for a free core at every operation)."""
    import torch

    from vlmcli.finetune.mixture import Source
    from vlmcli.finetune.stages import resolve
    from vlmcli.finetune.request import FinetuneRequest
    from vlmcli.finetune.train import run

    stage = resolve(3, {}, {"full_finetune": True, "max_steps": 120, "learning_rate": 1e-2, "batch_size": 1,
                            "grad_accum": 1, "save_steps": 10**6, "logging_steps": 10**6, "warmup_ratio": 0.0,
                            "gradient_checkpointing": False, "split": False})
    output = tmp_path_factory.mktemp("taught") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(FinetuneRequest(stage=stage, model=ModelSpec(model_id=str(tiny_granite), offline=True),
                            data=(Source(report_page.parent / "train.jsonl"),), output=output))
    finally:
        torch.set_num_threads(threads)
    return output


def _ocr(checkpoint: Path, *args) -> object:
    return runner.invoke(app, ["ocr", *map(str, args), "--model", str(checkpoint), "--offline", "--no-split"])


def test_the_checkpoint_files_say_doctags_not_the_name(tiny_granite, tiny_idefics3, tmp_path):
    smoldocling = build_docling_checkpoint(tmp_path / "renamed-plain-model", "smoldocling")
    assert load_profile(ModelSpec(model_id=str(tiny_granite))).doctags
    assert load_profile(ModelSpec(model_id=str(smoldocling))).doctags
    assert not load_profile(ModelSpec(model_id=str(tiny_idefics3))).doctags


def test_aliases_name_the_hub_checkpoints():
    assert ModelSpec.from_options(model="granite-docling").model_id == "ibm-granite/granite-docling-258M"
    assert ModelSpec.from_options(model="smoldocling").model_id == "ds4sd/SmolDocling-256M-preview"
    assert ModelSpec.from_options(model="someone/else").model_id == "someone/else"


def test_ocr_gives_a_doctags_model_its_prompt_budget_and_whole_pages(tiny_granite, page_png, monkeypatch):
    from vlmcli.jobs import ocr as job

    requests = []
    monkeypatch.setattr(job, "run_ocr", lambda request, **kw: requests.append(request) or job.OcrSummary())
    assert _ocr(tiny_granite, page_png).exit_code == 0
    assert _ocr(tiny_granite, page_png, "--prompt", "Convert table to OTSL.", "--max-new-tokens", "64").exit_code == 0
    first, second = requests
    assert first.doctags and first.instruction == DOCTAGS_PROMPT
    assert first.run.generation.max_new_tokens == 8192 and not first.run.split.bands
    assert first.run.generation.repetition_min_tokens == DOCTAGS_REPETITION_MIN_TOKENS
    assert second.instruction == "Convert table to OTSL." and second.run.generation.max_new_tokens == 64


@pytest.mark.model
@pytest.mark.parametrize("flavour", ["granite", "smoldocling"])
def test_tags_are_kept_the_cache_is_used_and_tokens_equal_transformers(flavour, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmcli import model
    from vlmcli.model.generate import generate
    from vlmcli.prompts import user_messages

    checkpoint = build_docling_checkpoint(tmp_path / flavour, flavour, seed=3)
    run = RunSpec.from_options(model=str(checkpoint), offline=True, dtype=DType.float32, max_new_tokens=24,
                               transcription=DOCTAGS_TRANSCRIPTION)
    loaded = model.load(run.model, run.split)
    assert loaded.doctags and (loaded.model.generation_config.use_cache is False) == (flavour == "granite")
    calls, real = [], loaded.model.generate
    monkeypatch.setattr(loaded.model, "generate", lambda **kw: calls.append(kw) or real(**kw))
    image = draw_page((120, 90), "12.50")
    ours = generate(loaded, user_messages(DOCTAGS_PROMPT, 1), [image], run.generation)
    assert calls[0]["use_cache"] is True  # granite's config says false; each step would re-read the prompt
    processor = AutoProcessor.from_pretrained(checkpoint)
    reference = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch.float32)
    prompt = processor.apply_chat_template(user_messages(DOCTAGS_PROMPT, 1), add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[[image]], return_tensors="pt")
    out = reference.generate(**inputs, do_sample=False, max_new_tokens=24, use_cache=True,
                             eos_token_id=loaded.stop_token_ids)
    theirs = out[0, inputs["input_ids"].shape[1]:].tolist()
    assert list(ours.token_ids) == theirs[:len(ours.token_ids)]
    assert ours.text == processor.tokenizer.decode(ours.token_ids, skip_special_tokens=False).strip()
    # The DocTags tags among the generated tokens survive decoding, each one, in order (a random model writes
    # plenty: they are more than half of the tiny tokenizer's vocabulary).
    added = processor.tokenizer.get_added_vocab()
    tags = [piece for piece in processor.tokenizer.convert_ids_to_tokens(list(ours.token_ids))
            if piece in added and re.fullmatch(r"</?[a-z_0-9]+>", piece)]
    assert len(tags) >= 3 and any(tag.startswith("<loc_") for tag in tags), tags
    assert re.findall(r"</?[a-z_0-9]+>", ours.text) == tags


def test_the_loop_guard_lets_a_table_of_equal_cells_through():
    cell, zero, row_end = 1, 2, 3
    table = ([cell, zero] * 10 + [row_end]) * 20  # 20 rows of 10 equal cells: 420 tokens, all repeats
    assert loop_start(table, 64, 4) is not None  # a plain model's guard would cut it
    assert loop_start(table, DOCTAGS_REPETITION_MIN_TOKENS, 4) is None
    looping = [9, 8, 7] + [cell, zero] * 600
    assert loop_start(looping, DOCTAGS_REPETITION_MIN_TOKENS, 4) is not None


@pytest.mark.parametrize("broken", [
    "<doctag><section_header_level_1><loc_1><loc_2><loc_3><loc_4>Title</section_header_level_1>"
    "<otsl><loc_1><loc_2><loc_3><loc_4><ched>A<ched>B<nl><fcel>1<fc",  # cut off in a table cell
    "<doctag><text><loc_1><loc_2><loc_3><loc_4>a sentence the token limit ended",  # no </doctag>
    "<doctag><mystery><loc_1><loc_2><loc_3><loc_4>kept words</mystery></doctag>",  # a tag docling lacks
    "plain words, no tags at all",
])
def test_broken_doctags_convert_as_far_as_they_go(broken):
    page = doctags.DocTagsPage(1, broken, doctags.PageGeometry(500, 500, 360.0, 360.0))
    markdown = doctags.markdown(doctags.document("x", [page]))
    words = re.findall(r"[a-z]{4,}", re.sub(r"<[^>]*>", " ", broken).lower())
    assert words and all(word in markdown.lower() for word in words[:2]), markdown


def test_doctags_format_needs_a_doctags_model(tiny_idefics3, page_png):
    result = _ocr(tiny_idefics3, page_png, "-f", "doctags")
    assert result.exit_code == ExitCode.usage and "needs a DocTags checkpoint" in result.stderr
    assert _ocr(tiny_idefics3, page_png, "-f", "pdf").exit_code == ExitCode.usage  # a PDF needs -o


def test_without_docling_core_conversion_is_exit_6_before_any_page(tiny_granite, page_png, monkeypatch):
    monkeypatch.setitem(sys.modules, "docling_core", None)
    result = _ocr(tiny_granite, page_png, "-f", "markdown")
    assert result.exit_code == ExitCode.dependency and 'pip install "vlmcli[docling]"' in result.stderr
    assert "pages ok" not in result.stderr


@pytest.mark.model
def test_a_taught_doctags_model_gives_every_format(taught_granite, report_page, tmp_path):
    raw = _ocr(taught_granite, report_page, "-f", "doctags")
    assert raw.exit_code == 0 and raw.stdout.strip() == PAGE_DOCTAGS  # what it was taught, tags and all
    markdown = _ocr(taught_granite, report_page, "-f", "markdown").stdout
    assert "## Quarterly Report" in markdown and "Revenue grew in the third quarter." in markdown
    assert re.search(r"\| Item +\| +Q2 +\| +Q3 +\|", markdown) and re.search(r"\| Costs +\| +7 +\| +8 +\|", markdown)
    page_html = _ocr(taught_granite, report_page, "-f", "html").stdout
    assert "<h2>Quarterly Report</h2>" in page_html and "<table>" in page_html
    tables = tmp_path / "tables"
    result = _ocr(taught_granite, report_page, "-f", "json", "--tables", tables)
    page_record, document = (json.loads(line) for line in result.stdout.splitlines())
    assert (tables / "report.png.p1.t1.csv").read_text() == "Item,Q2,Q3\nSales,10,12\nCosts,7,8\n"
    heading = page_record["elements"][0]
    assert heading["label"] == "section_header" and heading["text"] == "Quarterly Report"
    assert heading["bbox_px"] == pytest.approx([20, 15, 140, 27], abs=1)  # <loc_N> is N/500 of the page
    assert page_record["page_width_pt"] == pytest.approx(WIDTH_PX * 72 / 96)  # a PNG without DPI: 96 assumed
    assert document["document"]["schema_name"] == "DoclingDocument" and document["source"] == str(report_page)
    out, pdf_tables = tmp_path / "out", tmp_path / "pdf-tables"
    assert _ocr(taught_granite, report_page, "-f", "pdf", "-o", out, "--tables", pdf_tables).exit_code == 0
    assert (pdf_tables / "report.png.p1.t1.csv").read_text() == "Item,Q2,Q3\nSales,10,12\nCosts,7,8\n"
    _assert_searchable(out / "report.png.pdf", page_record["elements"])


def _assert_searchable(pdf: Path, elements: list[dict]) -> None:
    """pdftotext reads every element's words, and each word lies inside its element's box."""
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    words = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    boxes = [(float(a), float(b), float(c), float(d), w) for a, b, c, d, w in re.findall(
        r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', words)]
    scale = 72 / 96
    for element in elements:
        left, top, right, bottom = (v * scale for v in element["bbox_px"])
        for word in element["text"].split():
            assert word in text
            assert any(w == word and left - 1 <= x0 and x1 <= right + 1 and top - 1 <= y0 and y1 <= bottom + 1
                       for x0, y0, x1, y1, w in boxes), (word, element["bbox_px"])


@pytest.mark.model
def test_a_plain_model_makes_a_searchable_pdf_of_its_text(tiny_idefics3, pdf_3_pages, tmp_path):
    out = tmp_path / "out"
    listed = _ocr(tiny_idefics3, pdf_3_pages, "-f", "json", "--max-new-tokens", "12")
    texts = [json.loads(line)["text"] for line in listed.stdout.splitlines()]
    assert _ocr(tiny_idefics3, pdf_3_pages, "-f", "pdf", "-o", out, "--max-new-tokens", "12").exit_code == 0
    pdf = out / "doc.pdf.pdf"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Pages:\s+3", info) and re.search(r"Page size:\s+300 x 400 pts", info)
    for number, page_text in enumerate(texts, start=1):
        # -raw: the words in the order the PDF writes them, each as written. Without it pdftotext rebuilds
        # lines and joins a word ending in "-" to the next one ("ant-", "due" -> "antdue"), which is its
        # reading of a hyphenated line end, not what the text layer holds.
        extracted = subprocess.run(["pdftotext", "-raw", "-f", str(number), "-l", str(number), str(pdf), "-"],
                                   capture_output=True, text=True, check=True).stdout
        assert extracted.split() == page_text.split()


def test_a_doctags_target_trains_with_the_doctags_instruction(tmp_path):
    from vlmcli.finetune.data import load_examples

    draw_page().save(tmp_path / "p.png")
    lines = [{"image": "p.png", "text": PAGE_DOCTAGS}, {"image": "p.png", "text": "plain words"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    (doctags_example, plain_example), problems = load_examples(tmp_path / "d.jsonl")
    assert not problems and doctags_example.target == PAGE_DOCTAGS
    instruction = [part["text"] for part in doctags_example.prompt_messages[0]["content"] if part["type"] == "text"]
    assert instruction == [DOCTAGS_PROMPT]
    assert DOCTAGS_PROMPT not in json.dumps(plain_example.prompt_messages)
