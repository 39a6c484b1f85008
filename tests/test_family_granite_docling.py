"""Granite-Docling v2 (`granite_docling`) on its tiny checkpoint: the card's recipe (`<doclang>` through the chat
template, special tokens kept), DocLang converted by docling-core into Markdown, HTML, JSON elements, CSV tables
and a searchable PDF, tiles and the ladder, batches, resume, adapters and 4-bit loading."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import always_load, draw_page, load_run
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from vlmcli.cli import app
from vlmcli.errors import ExitCode
from vlmcli.jobs import doctags
from vlmcli.model.families import DOCLANG
from vlmcli.model.families.granite_docling import DOCLANG_PROMPT, GRANITE_DOCLING
from vlmcli.specs import DType, GenerationSpec, ModelSpec, OutputFormat, Quant, RunSpec, SplitSpec

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
NEW_TOKENS = 6
QUESTION = "What is the total?"
SIDE_PX = 320  # the report page is square: DocLang's 0..512 grid on both axes
CELLS = [["Item", "Q2"], ["Sales", "10"]]


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _loc(*px: float) -> str:
    return "".join(f'<location value="{round(512 * v / SIDE_PX)}"/>' for v in px)


REPORT = ('<doclang version="0.8"><heading>' + _loc(20, 15, 140, 27) + "Quarterly Report</heading>"
          "<text>" + _loc(20, 45, 230, 57) + "Revenue grew &amp; costs fell.</text>"
          "<table>" + _loc(20, 90, 200, 130)
          + "".join("".join(f"<fcel/>{cell}" for cell in row) + "<nl/>" for row in CELLS) + "</table></doclang>")


@pytest.fixture(scope="module")
def granite(tiny_checkpoint) -> Path:
    return tiny_checkpoint("granite_docling")


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """Pages of different tile counts: 4 tiles and the thumbnail, and a single tile."""
    folder = tmp_path_factory.mktemp("pages")
    found = {}
    for name, size in (("page", (300, 400)), ("small", (64, 64))):
        found[name] = folder / f"{name}.png"
        draw_page(size, "Total 12.50").save(found[name])
    return found


def _run(checkpoint, batch_size=1, **model) -> RunSpec:
    return RunSpec(model=ModelSpec(model_id=str(checkpoint), offline=True, dtype=DType.float32, **model),
                   split=SplitSpec(bands=False), generation=GenerationSpec(max_new_tokens=NEW_TOKENS),
                   batch_size=batch_size)


def test_the_profile_holds_the_card_recipe(granite):
    from vlmcli.model.profile import load_profile

    assert load_profile(ModelSpec(model_id=str(granite))).family is GRANITE_DOCLING
    assert ModelSpec.from_options(model="granite-docling-v2").family == "granite_docling"
    assert GRANITE_DOCLING.instruction() == DOCLANG_PROMPT and GRANITE_DOCLING.docling_markup == DOCLANG
    run = RunSpec.from_options(model=str(granite), transcription=GRANITE_DOCLING.transcription)
    assert run.generation.max_new_tokens == 4096 and not run.split.bands


def test_ask_and_ocr_give_the_card_recipes_tokens(granite, pages):
    from tools.models.recipes import RECIPES, load

    model, processor = load(granite)
    tokenizer = processor.tokenizer

    def card_text(**kwargs) -> str:
        result = RECIPES["granite_docling"](model, processor, Image.open(pages["page"]).convert("RGB"),
                                           max_new_tokens=NEW_TOKENS, **kwargs)
        ids = result.token_ids[:-1] if result.token_ids[-1] == tokenizer.eos_token_id else result.token_ids
        return tokenizer.decode(ids, skip_special_tokens=False).strip()

    common = ["--model", granite, "--offline", "--dtype", "float32", "--max-new-tokens", NEW_TOKENS]
    answer = _cli("ask", pages["page"], QUESTION, *common)
    assert answer.exit_code == 0, answer.output
    assert answer.stdout.strip() == card_text(text=QUESTION)
    page_record, document = map(json.loads, _cli("ocr", pages["page"], "-f", "json", *common).stdout.splitlines())
    assert page_record["text"] == card_text() and page_record["image_tokens"] == 5 * 16  # 2x2 tiles + thumbnail
    assert document["document"]["schema_name"] == "DoclingDocument"


def test_doclang_converts_to_every_format(tmp_path):
    """A DocLang page (written by hand: the tiny model writes noise) through the real job, as a DocTags page goes:
    Markdown, HTML, JSON elements with their boxes, CSV tables, and a PDF whose words lie in their elements."""
    from vlmcli.jobs.ocr import OcrRequest, run_ocr
    from vlmcli.pipeline.results import PageResult

    page = tmp_path / "report.png"
    image = Image.new("RGB", (SIDE_PX, SIDE_PX), "white")
    ImageDraw.Draw(image).text((20, 15), "Quarterly Report", fill="black")
    image.save(page)

    class Written:
        def start(self, run, progress) -> None:
            pass

        def transcribe(self, todo, instruction, run):
            for ref in todo:
                yield PageResult(ref.source, ref.page_number, REPORT, 1, 1, 0.0, "stop", longest_edge_px=128)

    def ocr(fmt, out_dir=None, tables_dir=None) -> str:
        written = []
        request = OcrRequest(inputs=(page,), instruction=DOCLANG_PROMPT, run=RunSpec(), output_format=fmt,
                             out_dir=out_dir, family=GRANITE_DOCLING, tables_dir=tables_dir)
        assert run_ocr(request, write=written.append, engine=Written()).exit_code == ExitCode.ok
        return "".join(written)

    markdown = ocr(OutputFormat.markdown)
    assert "# Quarterly Report" in markdown and "Revenue grew" in markdown
    assert re.search(r"\| Item +\| +Q2 \|", markdown) and re.search(r"\| Sales +\| +10 \|", markdown)
    assert "<table>" in ocr(OutputFormat.html)
    page_record, _document = map(json.loads, ocr(OutputFormat.json, tables_dir=tmp_path / "tables").splitlines())
    assert (tmp_path / "tables" / "report.png.p1.t1.csv").read_text() == "Item,Q2\nSales,10\n"
    assert page_record["text"] == REPORT  # the model's own output, as the manifest keeps it
    heading, text, table = page_record["elements"]
    assert (heading["text"], text["text"], table["label"]) == ("Quarterly Report", "Revenue grew & costs fell.",
                                                                "table")
    assert heading["bbox_px"] == pytest.approx([20, 15, 140, 27], abs=1)  # N/512 of the page
    ocr(OutputFormat.pdf, tmp_path / "out")
    words = subprocess.run(["pdftotext", "-bbox", str(tmp_path / "out" / "report.png.pdf"), "-"],
                           capture_output=True, text=True, check=True).stdout
    placed = {w: tuple(map(float, box)) for *box, w in re.findall(
        r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', words)}
    scale = 72 / 96  # a PNG without DPI: 96 assumed
    left, top, right, bottom = (v * scale for v in heading["bbox_px"])
    for word in ("Quarterly", "Report"):
        x0, y0, x1, y1 = placed[word]
        assert left - 1 <= x0 and x1 <= right + 1 and top - 1 <= y0 and y1 <= bottom + 1, word
    assert {"Revenue", "Sales", "10"} <= set(placed)


@pytest.mark.parametrize("broken", [
    REPORT[:REPORT.index("<table>") + 30],  # cut off inside a location tag
    "<heading>" + _loc(20, 15, 140, 27) + "No root</heading><text>the token limit ended",
    "<doclang><mystery>kept words</mystery><text>more</oops> words</text></doclang>",
    "plain words, 3 < 4, no tags at all",
])
def test_broken_doclang_converts_as_far_as_it_goes(broken):
    page = doctags.DocTagsPage(1, broken, doctags.PageGeometry(SIDE_PX, SIDE_PX, 240.0, 240.0))
    markdown = doctags.markdown(doctags.document("x", [page], DOCLANG))
    words = re.findall(r"[a-z]{4,}", re.sub(r"<[^>]*>", " ", broken).lower())
    assert words and all(word in markdown.lower() for word in words), markdown


def test_tiles_and_the_ladder(granite):
    """At most `max_patches` tiles (the tiny checkpoint's 4 of 64 px, the real one's 32 of 512), set by
    --longest-edge, one tile fewer per side on each rung, then the page as one tile."""
    from vlmcli.model.processor import at_resolution, lower_resolution

    loaded = load_run(_run(granite))
    a4 = Image.new("RGB", (1654, 2339), "white")

    def tokens(view) -> int:
        prompt = GRANITE_DOCLING.prompt(view.processor, GRANITE_DOCLING.messages(DOCLANG_PROMPT, 1))
        inputs = view.processor(text=prompt, images=a4, return_tensors="pt")
        return int((inputs["input_ids"] == view.image_token_id).sum())

    assert loaded.max_input_px == 128 and tokens(loaded) == 3 * 16  # 1x2 tiles and the thumbnail
    larger = at_resolution(loaded, SplitSpec(longest_edge_px=3 * 64))
    rungs = [larger]
    while (lower := lower_resolution(rungs[-1])) is not None:
        rungs.append(lower)
    assert [tokens(view) for view in rungs] == [7 * 16, 3 * 16, 16]  # 2x3 tiles, 1x2, one tile
    assert [view.max_input_px for view in rungs] == [192, 128, 64]
    assert loaded.processor.image_processor.max_patches == 4  # copies were changed, not the loaded processor


def test_two_pages_per_batch_give_the_tokens_of_one_by_one(granite, pages, monkeypatch):
    """Rows of different tile counts: the same inputs as the processor's own batch, each row's logits those of the
    page alone, and the same tokens (the tiny model's greedy tokens barely depend on the page: hence the logits)."""
    from vlmcli.model.generate import build_inputs, merge_rows
    from vlmcli.pipeline.transcribe import transcribe

    loaded = load_run(_run(granite))
    always_load(monkeypatch, loaded)
    order = [pages["page"], pages["small"], pages["page"]]
    fields = [[(item.text, item.new_tokens, item.image_tokens) for item in
               transcribe(order, DOCLANG_PROMPT, _run(granite, batch_size))] for batch_size in (1, 2)]
    assert fields[0] == fields[1] and fields[0][0][2] != fields[0][1][2]
    images = [Image.open(path).convert("RGB") for path in order]
    messages = GRANITE_DOCLING.messages(DOCLANG_PROMPT, 1)
    rows = [build_inputs(loaded, messages, [image]) for image in images]
    merged = merge_rows(loaded, rows)
    text = GRANITE_DOCLING.prompt(loaded.processor, messages)
    batch = loaded.processor(text=[text] * 3, images=[[image] for image in images], padding=True,
                             padding_side="left", return_tensors="pt")
    assert set(merged) == set(batch) == {"input_ids", "attention_mask", "pixel_values", "pixel_attention_mask"}
    for key, value in merged.items():
        assert torch.equal(value, batch[key].to(value.dtype)), key
    with torch.no_grad():
        together = loaded.model(**merged).logits[:, -1]
        for row, alone in enumerate(rows):
            assert torch.allclose(together[row], loaded.model(**alone).logits[0, -1], atol=1e-5)


def test_resume_reads_nothing_again(granite, pages, tmp_path, monkeypatch):
    from vlmcli import model

    args = ["ocr", pages["page"], "-f", "json", "-o", tmp_path / "out", "--model", granite, "--offline",
            "--max-new-tokens", NEW_TOKENS]
    first = _cli(*args)
    assert first.exit_code == 0, first.output
    written = (tmp_path / "out" / "page.png.jsonl").read_text()
    monkeypatch.setattr(model, "load", lambda *a, **kw: pytest.fail("the resumed run loaded the model"))
    again = _cli(*args, "--resume")
    assert again.exit_code == 0 and "1 pages ok (1 from the manifest)" in again.stderr
    assert (tmp_path / "out" / "page.png.jsonl").read_text() == written


def test_finetune_stages_then_ask_with_the_adapter(granite, pages, tmp_path):
    from safetensors import safe_open

    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for color, word in (("red", "cat"), ("green", "dog")):
        Image.new("RGB", (64, 48), color).save(data / f"{color}.png")
        rows += [{"image": f"{color}.png", "question": "What is this?", "answer": word},
                 {"image": f"{color}.png", "text": f"<doclang><text>{word}</text></doclang>"}]
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    common = ["--data", data / "train.jsonl", "--max-steps", "2", "--save-steps", "2", "--lora-rank", "4",
              "--batch-size", "2", "--grad-accum", "1", "--offline"]  # the first step's learning rate is warmup's 0
    first = _cli("finetune", "--stage", "1", "-o", tmp_path / "s1", "--model", granite, *common)
    assert first.exit_code == 0, first.output
    second = _cli("finetune", "--stage", "2", "-o", tmp_path / "s2", "--from", tmp_path / "s1", *common)
    assert second.exit_code == 0, second.output
    with safe_open(tmp_path / "s1" / "adapter_model.safetensors", "pt") as handle:
        names = list(handle.keys())
    for module in ("text_model.layers.1.self_attn.q_proj", "text_model.layers.0.mlp.down_proj",
                   "vision_model.encoder.layers.0.mlp.fc1", "vision_model.connector.coarse.projection"):
        assert any(module in name for name in names), module
    asked = _cli("ask", pages["page"], QUESTION, "--model", granite, "--offline", "--max-new-tokens", 2,
                 "--adapter", tmp_path / "s2")
    assert asked.exit_code == 0, asked.output
    assert _logits(_run(granite, adapter=tmp_path / "s2"), pages["page"]) != _logits(_run(granite), pages["page"])


def _logits(run: RunSpec, page: Path) -> list[float]:
    from vlmcli.model.generate import build_inputs

    loaded = load_run(run)
    inputs = build_inputs(loaded, GRANITE_DOCLING.messages(QUESTION, 1), [Image.open(page).convert("RGB")])
    with torch.no_grad():
        return loaded.model(**inputs).logits[0, -1].tolist()


def test_quantize_4bit_loads_and_reads(granite, pages):
    bnb = pytest.importorskip("bitsandbytes")
    from vlmcli.pipeline.ask import ask

    run = _run(granite, quantize=Quant.nf4)
    loaded = load_run(run)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.model.model.text_model.modules())
    assert ask([pages["page"]], QUESTION, run).new_tokens > 0
