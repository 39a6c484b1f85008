"""DeepSeek-OCR-2 (`deepseek_ocr2`) on its tiny checkpoint: the card's recipe (no chat template, the grounding
prompt, special tokens kept), grounding boxes in -f json and the searchable PDF, tiles and the ladder, batches,
resume, adapters, 4-bit loading, and checkpoints whose processor and model disagree."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import always_load, draw_page, load_run
from PIL import Image
from typer.testing import CliRunner

from vlmcli.cli import app
from vlmcli.errors import ExitCode
from vlmcli.model.families.deepseek import DEEPSEEK_OCR2, FREE_OCR_PROMPT, GROUNDING_PROMPT
from vlmcli.specs import DType, GenerationSpec, ModelSpec, Quant, RunSpec, SplitSpec

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
NEW_TOKENS = 6
QUESTION = "What is the total?"
A4_PX = (1654, 2339)


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def deepseek(tiny_checkpoint) -> Path:
    return tiny_checkpoint("deepseek_ocr2")


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """A page below the 768 px tile (global view only) and one cut into tiles."""
    folder = tmp_path_factory.mktemp("pages")
    found = {}
    for name, size, text in (("small", (300, 400), "Invoice 42"), ("tiled", (900, 1200), "Total 12.50")):
        found[name] = folder / f"{name}.png"
        draw_page(size, text).save(found[name])
    return found


def _run(checkpoint, batch_size=1, split=None, **model) -> RunSpec:
    return RunSpec(model=ModelSpec(model_id=str(checkpoint), offline=True, dtype=DType.float32, **model),
                   split=SplitSpec(split=split, bands=False), generation=GenerationSpec(max_new_tokens=NEW_TOKENS),
                   batch_size=batch_size)


def _card_text(result, tokenizer) -> str:
    """The recipe's text as vlmcli gives it: special tokens kept, the end token that stopped it left out."""
    ids = result.token_ids[:-1] if result.token_ids[-1] == tokenizer.eos_token_id else result.token_ids
    return tokenizer.decode(ids, skip_special_tokens=False).strip()


def test_the_profile_holds_the_card_recipe(deepseek):
    from vlmcli.model.profile import load_profile

    assert load_profile(ModelSpec(model_id=str(deepseek))).family is DEEPSEEK_OCR2
    assert ModelSpec.from_options(model="deepseek-ocr").family == "deepseek_ocr2"
    assert DEEPSEEK_OCR2.instruction() == GROUNDING_PROMPT and DEEPSEEK_OCR2.instruction(task="free") == FREE_OCR_PROMPT
    messages = DEEPSEEK_OCR2.messages(GROUNDING_PROMPT, 1)
    assert DEEPSEEK_OCR2.prompt(None, messages) == "<image>\n<|grounding|>Convert the document to markdown."
    run = RunSpec.from_options(model=str(deepseek), transcription=DEEPSEEK_OCR2.transcription)
    assert run.generation.max_new_tokens == 8192 and not run.split.bands  # the card's budget; boxes are the page's


def test_ask_and_ocr_give_the_card_recipes_tokens(deepseek, pages):
    from tools.models.recipes import RECIPES, load

    model, processor = load(deepseek)
    common = ["--model", deepseek, "--offline", "--dtype", "float32", "--max-new-tokens", NEW_TOKENS]
    answer = _cli("ask", pages["small"], QUESTION, *common)
    card = RECIPES["deepseek_ocr2"](model, processor, Image.open(pages["small"]).convert("RGB"), question=QUESTION,
                                    max_new_tokens=NEW_TOKENS)
    assert answer.exit_code == 0, answer.output
    assert answer.stdout.strip() == _card_text(card, processor.tokenizer)
    read = _cli("ocr", pages["tiled"], "-f", "json", "--first-pass", "none", *common)
    record = json.loads(read.stdout)
    card = RECIPES["deepseek_ocr2"](model, processor, Image.open(pages["tiled"]).convert("RGB"),
                                    max_new_tokens=NEW_TOKENS)
    assert record["image_tokens"] == 256 + 6 * 144 + 1  # 900x1200 px: the view and a 2x3 grid of tiles
    assert record.get("raw_text", record["text"]) == _card_text(card, processor.tokenizer)
    assert record["split"] is True and record["longest_edge_px"] == 2304


def test_tiles_the_ladder_and_the_view_without_tiles(deepseek, pages):
    """Up to 6 tiles of 768 px beside the 1024 px view (the card's); --longest-edge sets how many, each rung of the
    ladder drops some; without tiles the view stays 1024 px and the processor counts its tokens right."""
    from vlmcli.model.image_only import load_processor
    from vlmcli.model.processor import at_resolution, lower_resolution
    from vlmcli.pipeline.transcribe import transcribe

    loaded = load_run(_run(deepseek))
    a4 = Image.new("RGB", A4_PX, "white")

    def tokens(view) -> tuple[int, int]:
        inputs = view.processor(images=a4, text="<image>\nFree OCR.", return_tensors="pt")
        return int(inputs["num_local_patches"][0]), int((inputs["input_ids"] == view.image_token_id).sum())

    assert tokens(loaded) == (6, 256 + 6 * 144 + 1) and loaded.max_input_px == 2304
    rungs = [loaded]
    while (lower := lower_resolution(rungs[-1])) is not None:
        rungs.append(lower)
    assert [tokens(view) for view in rungs] == [(6, 1121), (2, 545), (0, 257)]
    assert [view.max_input_px for view in rungs] == [2304, 1536, 1024]
    assert tokens(at_resolution(loaded, SplitSpec(longest_edge_px=3072))) == (6, 1121)  # at most 12: A4 is 2x3
    assert loaded.processor.images_kwargs["max_patches"] == 6  # copies were changed, not the loaded processor
    unsplit = next(transcribe([pages["tiled"]], "Free OCR.", _run(deepseek, split=False)))
    assert unsplit.image_tokens == 257 and unsplit.split is False and unsplit.new_tokens > 0
    plain = load_processor(deepseek)(images=a4, text="<image>\nFree OCR.", crop_to_patches=False, return_tensors="pt")
    assert int((plain["input_ids"] == loaded.image_token_id).sum()) == 257  # ...but transformers shows 768 px:
    assert plain["pixel_values"].shape[-1] == 768  # the trap DeepSeek's knob steps around


def test_grounding_boxes_go_to_json_and_place_the_text_in_the_pdf(tmp_path):
    """A grounded page (written by hand: the tiny model writes noise) through the real job: -f json carries the
    boxes and the raw output, markdown the text without tags, and the PDF's words lie inside their blocks."""
    from vlmcli.jobs.ocr import OcrRequest, run_ocr
    from vlmcli.pipeline.results import PageResult
    from vlmcli.specs import OutputFormat

    page = tmp_path / "invoice.png"
    image = Image.new("RGB", (400, 300), "white")
    image.save(page)
    grounded = ("<|ref|>title<|/ref|><|det|>[[50, 66, 500, 133]]<|/det|>\n# Invoice 42\n\n"
                "<|ref|>table<|/ref|><|det|>[[50, 400, 900, 600]]<|/det|>\n"
                "<table><tr><td>Total</td><td>12.50</td></tr></table>")

    class Written:
        def start(self, run, progress) -> None:
            pass

        def transcribe(self, todo, instruction, run):
            for ref in todo:
                yield PageResult(ref.source, ref.page_number, grounded, 1, 1, 0.0, "stop", longest_edge_px=2304)

    def ocr(fmt, out_dir=None) -> str:
        written = []
        request = OcrRequest(inputs=(page,), instruction=GROUNDING_PROMPT, run=RunSpec(), output_format=fmt,
                             out_dir=out_dir, family=DEEPSEEK_OCR2)
        assert run_ocr(request, write=written.append, engine=Written()).exit_code == ExitCode.ok
        return "".join(written)

    record = json.loads(ocr(OutputFormat.json))
    assert record["raw_text"] == grounded and "<|ref|>" not in record["text"] and "# Invoice 42" in record["text"]
    assert [(box["label"], box["bbox"]) for box in record["boxes"]] == [
        ("title", [round(v / 999, 4) for v in (50, 66, 500, 133)]),
        ("table", [round(v / 999, 4) for v in (50, 400, 900, 600)])]
    assert "<|det|>" not in ocr(OutputFormat.markdown)
    ocr(OutputFormat.pdf, tmp_path / "out")
    pdf = tmp_path / "out" / "invoice.png.pdf"
    words = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    placed = {w: (float(a), float(b), float(c), float(d)) for a, b, c, d, w in re.findall(
        r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', words)}
    assert set(placed) == {"Invoice", "42", "Total", "12.50"}  # no '#', no HTML
    width_pt, height_pt = 400 * 72 / 96, 300 * 72 / 96  # a PNG without DPI: 96 assumed
    for words_in, (x0, y0, x1, y1) in ((("Invoice", "42"), (50, 66, 500, 133)),
                                        (("Total", "12.50"), (50, 400, 900, 600))):
        for word in words_in:
            left, top, right, bottom = placed[word]
            assert x0 / 999 * width_pt - 1 <= left and right <= x1 / 999 * width_pt + 1, word
            assert y0 / 999 * height_pt - 1 <= top and bottom <= y1 / 999 * height_pt + 1, word


def test_two_pages_per_batch_give_the_tokens_of_one_by_one(deepseek, pages, monkeypatch):
    """Rows with and without tiles: the global views stacked, the tiles of every row in one tensor with their
    count per row; the same inputs as the processor's own batch, the same tokens as pages read alone."""
    from vlmcli.model.generate import build_inputs, merge_rows
    from vlmcli.pipeline.transcribe import transcribe

    loaded = load_run(_run(deepseek))
    always_load(monkeypatch, loaded)
    order = [pages["small"], pages["tiled"], pages["small"]]
    fields = [[(item.text, item.new_tokens, item.image_tokens) for item in
               transcribe(order, GROUNDING_PROMPT, _run(deepseek, batch_size))] for batch_size in (1, 2)]
    assert fields[0] == fields[1] and fields[0][0][2] != fields[0][1][2]
    images = [Image.open(path).convert("RGB") for path in order]
    messages = DEEPSEEK_OCR2.messages(GROUNDING_PROMPT, 1)
    merged = merge_rows(loaded, [build_inputs(loaded, messages, [image]) for image in images])
    text = DEEPSEEK_OCR2.prompt(loaded.processor, messages)
    batch = loaded.processor(text=[text] * 3, images=[[image] for image in images], padding=True,
                             padding_side="left", return_tensors="pt")
    assert set(merged) == set(batch) == {"input_ids", "attention_mask", "pixel_values", "pixel_values_local",
                                         "num_local_patches"}
    for key, value in merged.items():
        assert torch.equal(value, batch[key].to(value.dtype)), key


def test_resume_reads_nothing_again(deepseek, pages, tmp_path, monkeypatch):
    from vlmcli import model

    args = ["ocr", pages["small"], "-f", "json", "-o", tmp_path / "out", "--model", deepseek, "--offline",
            "--max-new-tokens", NEW_TOKENS, "--first-pass", "none"]
    first = _cli(*args)
    assert first.exit_code == 0, first.output
    written = (tmp_path / "out" / "small.png.jsonl").read_text()
    monkeypatch.setattr(model, "load", lambda *a, **kw: pytest.fail("the resumed run loaded the model"))
    again = _cli(*args, "--resume")
    assert again.exit_code == 0 and "1 pages ok (1 from the manifest)" in again.stderr
    assert (tmp_path / "out" / "small.png.jsonl").read_text() == written


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    rows = []
    for color, word in (("red", "cat"), ("green", "dog")):
        Image.new("RGB", (64, 48), color).save(folder / f"{color}.png")
        rows += [{"image": f"{color}.png", "question": "What is this?", "answer": word},
                 {"image": f"{color}.png", "text": f"{word} {word}"}]
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder / "train.jsonl"


def test_labels_are_the_answer_and_its_end_token_after_the_prompt_as_asked(deepseek, dataset):
    """No chat template: the prompt is tokenized as inference tokenizes it, then each answer and the end token,
    which alone carry labels."""
    from vlmcli.finetune.collate import IGNORE_INDEX, Collator, example_images
    from vlmcli.finetune.data import load_examples

    from vlmcli.model.generate import build_inputs
    from vlmcli.specs import PdfSpec

    loaded = load_run(_run(deepseek))
    examples, _ = load_examples(dataset)
    tokenizer = loaded.processor.tokenizer
    batch = Collator(loaded.processor, loaded.image_token_id, loaded.max_input_px, PdfSpec(),
                     family=DEEPSEEK_OCR2)(examples[:2])
    for row, (example, instruction) in enumerate(zip(examples[:2], ("What is this?", GROUNDING_PROMPT))):
        image = example_images(example, loaded.max_input_px, PdfSpec())
        asked = build_inputs(loaded, DEEPSEEK_OCR2.messages(instruction, 1), image)["input_ids"][0]
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        answer = tokenizer(example.target + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        assert torch.equal(ids[:len(asked)], asked)
        assert labels[len(asked):len(asked) + len(answer)].tolist() == answer
        assert (labels[:len(asked)] == IGNORE_INDEX).all() and (labels[len(asked) + len(answer):] == IGNORE_INDEX).all()


def test_finetune_stages_then_ask_with_the_adapter(deepseek, dataset, pages, tmp_path):
    from safetensors import safe_open

    common = ["--data", dataset, "--max-steps", "2", "--save-steps", "2", "--lora-rank", "4", "--batch-size", "2",
              "--grad-accum", "1", "--offline"]  # the first step's learning rate is warmup's 0
    first = _cli("finetune", "--stage", "1", "-o", tmp_path / "s1", "--model", deepseek, *common)
    assert first.exit_code == 0, first.output
    second = _cli("finetune", "--stage", "2", "-o", tmp_path / "s2", "--from", tmp_path / "s1", *common)
    assert second.exit_code == 0, second.output
    with safe_open(tmp_path / "s1" / "adapter_model.safetensors", "pt") as handle:
        names = list(handle.keys())
    for module in ("language_model.layers.0.mlp.gate_proj", "shared_experts.down_proj", "self_attn.q_proj",
                   "sam_encoder.layers.0.attn.qkv", "vision_encoder.layers.0.mlp.up_proj",
                   "multi_modal_projector"):
        assert any(module in name for name in names), module
    assert not any("experts.gate_up_proj" in name or ".lm_head" in name for name in names)  # fused experts
    asked = _cli("ask", pages["small"], QUESTION, "--model", deepseek, "--offline", "--max-new-tokens", 2,
                 "--adapter", tmp_path / "s2")
    assert asked.exit_code == 0, asked.output
    assert _logits(_run(deepseek, adapter=tmp_path / "s2"), pages["small"]) != _logits(_run(deepseek), pages["small"])


def _logits(run: RunSpec, page: Path) -> list[float]:
    """The next-token logits for a page (the last position): what an adapter changes."""
    from vlmcli.model.generate import build_inputs

    loaded = load_run(run)
    inputs = build_inputs(loaded, DEEPSEEK_OCR2.messages(QUESTION, 1), [Image.open(page).convert("RGB")])
    with torch.no_grad():
        return loaded.model(**inputs).logits[0, -1].tolist()


def test_quantize_4bit_loads_and_reads(deepseek, pages):
    bnb = pytest.importorskip("bitsandbytes")
    from vlmcli.pipeline.ask import ask

    run = _run(deepseek, quantize=Quant.nf4)
    loaded = load_run(run)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.model.model.language_model.modules())
    assert ask([pages["small"]], QUESTION, run).new_tokens > 0


def test_a_processor_from_another_model_is_a_model_error(deepseek, pages, tmp_path):
    """The image token of another tokenizer (at load), or a processor that counts other view sizes (at
    generate): one line naming the disagreement, exit 9."""
    for name, edit in (("token", ("config.json", "image_token_id", 5)),
                       ("count", ("processor_config.json", "downsample_ratio", 2))):
        bad = tmp_path / name
        shutil.copytree(deepseek, bad)
        path = bad / edit[0]
        path.write_text(json.dumps({**json.loads(path.read_text()), edit[1]: edit[2]}))
        result = _cli("ask", pages["small"], QUESTION, "--model", bad, "--offline", "--max-new-tokens", 2)
        assert result.exit_code == ExitCode.model and "disagree" in result.stderr, result.output
        assert "Traceback" not in result.output
