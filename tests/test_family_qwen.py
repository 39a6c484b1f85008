"""The Qwen-VL families (model/families/qwen.py) on tiny checkpoints, offline on CPU: qwen2_5_vl (the generic
Qwen2.5-VL profile), olmocr2 and nanonets_ocr2 (Qwen2.5-VL checkpoints chosen by name), qwen3_vl.

`ask` and `ocr` give the tokens of each card's recipe through plain transformers (tools/models/recipes.py);
olmOCR-2's front matter and Nanonets' tags become `-f json` fields; a page olmOCR-2 says lies turned is turned and
read again; batches equal pages read one by one; fine-tuning stages chain and the adapter loads; 4-bit loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import draw_page
from vlmcli.cli import app

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]

NEW_TOKENS = 6
CHECKPOINT = {"qwen2_5_vl": "qwen2_5_vl", "olmocr2": "qwen2_5_vl", "nanonets_ocr2": "qwen2_5_vl",
              "qwen3_vl": "qwen3_vl"}
QUESTION = "What is the total?"
FLOAT32 = ["--offline", "--dtype", "float32", "--max-new-tokens", str(NEW_TOKENS)]


def _cli(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def _family_args(family: str, checkpoints) -> list:
    checkpoint = checkpoints(CHECKPOINT[family])
    return ["--model", checkpoint, *(["--family", family] if family != CHECKPOINT[family] else [])]


@pytest.fixture(scope="module")
def lively(tiny_checkpoint, tmp_path_factory):
    """`lively("qwen3_vl")`: the tiny checkpoint with its language model's final norm drawn at random (seeded).
    With the unit norm the tiny models write nearly the same tokens whatever the page and prompt (Qwen3-VL's tied
    embeddings repeat the prompt's last token, a newline, which decodes to nothing), so equal tokens would prove
    little."""
    import shutil

    from transformers import AutoModelForImageTextToText

    made: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in made:
            folder = tmp_path_factory.mktemp(f"lively-{family}")
            shutil.copytree(tiny_checkpoint(family), folder, dirs_exist_ok=True)
            model = AutoModelForImageTextToText.from_pretrained(folder)
            norm = model.model.language_model.norm.weight
            with torch.no_grad():
                norm.copy_(torch.randn(norm.shape, generator=torch.Generator().manual_seed(1)))
            model.save_pretrained(folder)
            made[family] = folder
        return made[family]

    return make


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> list[Path]:
    """Two small pages of different sizes (within the tiny processors' pixel budgets: not scaled by vlmcli)."""
    folder = tmp_path_factory.mktemp("qwen-pages")
    paths = [folder / "a.png", folder / "b.png"]
    draw_page((112, 84), "Total 42").save(paths[0])
    draw_page((56, 56), "7").save(paths[1])
    return paths


def _recipe(family: str, checkpoint: Path, image_path: Path, **kwargs):
    """The card's recipe on the page as vlmcli loads it, and the inputs it gave `generate`."""
    from tools.models.recipes import RECIPES, load
    from vlmcli.inputs.images import load_image

    model, processor = load(checkpoint)
    seen = {}
    generate = model.generate

    def spy(**inputs):
        seen.update(inputs)
        return generate(**inputs)

    model.generate = spy
    return RECIPES[family](model, processor, load_image(image_path), max_new_tokens=NEW_TOKENS, **kwargs), seen


def _spy_on_vlmcli(monkeypatch) -> list[dict]:
    """The inputs vlmcli hands `generate` for each page (its processor's output, as built)."""
    from vlmcli.model import generate

    seen, original = [], generate.generate_from_inputs

    def spy(loaded, inputs, spec, on_text=None):
        seen.append({key: value.clone() for key, value in inputs.items()})
        return original(loaded, inputs, spec, on_text)

    monkeypatch.setattr(generate, "generate_from_inputs", spy)
    return seen


def _same_inputs(ours: dict, theirs: dict) -> None:
    assert torch.equal(ours["input_ids"], theirs["input_ids"])  # the prompt: template, system turn, order
    assert torch.equal(ours["image_grid_thw"], theirs["image_grid_thw"])
    assert torch.equal(ours["pixel_values"], theirs["pixel_values"].to(ours["pixel_values"].dtype))


def test_profiles_are_recognised_or_named():
    """A qwen2_5_vl checkpoint is the generic Qwen2.5-VL profile; olmOCR-2 and Nanonets-OCR2, the same architecture,
    come only by name: their alias or --family."""
    from vlmcli.catalogue import BY_ALIAS
    from vlmcli.model.families import by_name, recognise
    from vlmcli.model.families.qwen import NANONETS_OCR2, OLMOCR2, QWEN2_5_VL, QWEN3_VL
    from vlmcli.specs import ModelSpec

    assert recognise("qwen2_5_vl", '"<|image_pad|>"') is QWEN2_5_VL
    assert recognise("qwen3_vl") is QWEN3_VL
    assert by_name("olmocr2") is OLMOCR2 and by_name("nanonets_ocr2") is NANONETS_OCR2
    assert ModelSpec.from_options(model="olmocr").family == "olmocr2"
    assert ModelSpec.from_options(model="nanonets-ocr").family == "nanonets_ocr2"
    assert [by_name(BY_ALIAS[alias].family) for alias in ("olmocr", "nanonets-ocr", "qwen3-vl")] == [
        OLMOCR2, NANONETS_OCR2, QWEN3_VL]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "olmocr2", "nanonets_ocr2", "qwen3_vl"])
def test_ask_and_ocr_give_the_card_recipes_tokens(lively, pages, monkeypatch, family):
    """`ask` with the card's own prompt as the question, and `ocr -f json` with the family's preset, give the
    card's recipe through plain transformers: the same prompt ids (template, system turn, where the text goes),
    the same pixels, the same new tokens decoded as the card decodes them."""
    from tools.models.recipes import NANONETS_PROMPT, OLMOCR_PROMPT
    from vlmcli.model.families import by_name

    seen = _spy_on_vlmcli(monkeypatch)
    fixed = family in ("olmocr2", "nanonets_ocr2")  # recipes with the card's prompt built in
    checkpoint = lively(CHECKPOINT[family])
    asked = _cli("ask", pages[0], OLMOCR_PROMPT if family == "olmocr2" else NANONETS_PROMPT
                 if family == "nanonets_ocr2" else QUESTION, *_family_args(family, lively), *FLOAT32)
    assert asked.exit_code == 0, asked.output
    expected, inputs = _recipe(family, checkpoint, pages[0], **({} if fixed else {"question": QUESTION}))
    assert len(expected.token_ids) == NEW_TOKENS and expected.text.strip()
    assert asked.stdout.strip() == expected.text.strip()
    _same_inputs(seen[0], inputs)

    read = _cli("ocr", pages[0], "-f", "json", *_family_args(family, lively), *FLOAT32)
    assert read.exit_code == 0, read.output
    record = json.loads(read.stdout)
    preset, inputs = _recipe(family, checkpoint, pages[0],
                             **({} if fixed else {"question": by_name(family).ocr_prompt}))
    assert record.get("raw_text", record["text"]) == preset.text.strip()
    assert record["new_tokens"] == len(preset.token_ids)
    _same_inputs(seen[1], inputs)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "olmocr2", "qwen3_vl"])
def test_batch_of_two_reads_as_one_by_one(lively, pages, family):
    """Rows of different sizes (12 and 4 image tokens): their patch lists and grids are joined
    (concatenated_inputs), the token rows left-padded (the multimodal positions follow), and each row's tokens are
    those of its page read alone (float32); olmOCR-2's prompt puts the long text before the image."""
    records = {}
    for size in (1, 2):
        result = _cli("ocr", *pages, "-f", "json", "--batch-size", size, *_family_args(family, lively), *FLOAT32)
        assert result.exit_code == 0, result.output
        records[size] = [(r.get("raw_text", r["text"]), r["new_tokens"], r["image_tokens"])
                         for r in map(json.loads, result.stdout.splitlines())]
    assert records[1] == records[2]
    (first, _, first_tokens), (second, _, second_tokens) = records[1]
    assert first_tokens != second_tokens  # rows of different lengths: the shorter one is padded
    # Rows kept in order: the pages read differently (under olmOCR's long prompt the tiny model writes the same).
    assert first != second or family == "olmocr2"


def _fake_generation(text: str):
    from vlmcli.model.generate import Generation

    return Generation(text=text, token_ids=(1, 2), image_tokens=12, prompt_tokens=40, new_tokens=2, seconds=0.01,
                      finish_reason="stop")


TURNED = ("---\nprimary_language: en\nis_rotation_valid: False\nrotation_correction: 90\nis_table: False\n"
          "is_diagram: False\n---\nsideways")
UPRIGHT = ("---\nprimary_language: en\nis_rotation_valid: True\nrotation_correction: 0\nis_table: True\n"
           "is_diagram: False\n---\n# Total\n\n<table><tr><td>42</td></tr></table>")


def test_olmocr_turns_a_page_it_says_lies_turned_and_resumes_it(tiny_checkpoint, pages, tmp_path, monkeypatch):
    """olmOCR's toolkit: a front matter with is_rotation_valid false turns the page by rotation_correction
    (PIL's ROTATE_90: a 112 x 84 page becomes 84 x 112) and reads it again once. The record says so, the fields
    are the second reading's front matter (out of the text), and a resumed run reads nothing."""
    from vlmcli.model import generate

    seen_grids = []

    def fake(loaded, inputs, spec, on_text=None):
        seen_grids.append(inputs["image_grid_thw"].tolist())
        return _fake_generation(TURNED if len(seen_grids) == 1 else UPRIGHT)

    monkeypatch.setattr(generate, "generate_from_inputs", fake)
    args = ["ocr", pages[0], "-f", "json", "-o", tmp_path / "out", *_family_args("olmocr2", tiny_checkpoint),
            *FLOAT32]
    output = tmp_path / "out" / "a.png.jsonl"
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    (_, height, width), = seen_grids[0]
    assert seen_grids == [[[1, height, width]], [[1, width, height]]] and height != width
    record = json.loads(output.read_text())
    assert record["turned_deg"] == 90 and record["attempts"] == 2
    assert record["text"] == "# Total\n\n<table><tr><td>42</td></tr></table>" and record["raw_text"] == UPRIGHT
    assert record["fields"] == {"primary_language": "en", "is_rotation_valid": True, "rotation_correction": 0,
                                "is_table": True, "is_diagram": False}
    again = _cli(*args, "--resume")
    assert again.exit_code == 0 and "1 from the manifest" in again.stderr
    assert len(seen_grids) == 2 and json.loads(output.read_text()) == record


def test_a_batch_turns_its_turned_pages_alone(tiny_checkpoint, pages, monkeypatch):
    """--batch-size: a row whose front matter asks for a turn is read again on its own, turned."""
    from vlmcli.model import generate

    monkeypatch.setattr(generate, "generate_batch", lambda loaded, inputs, spec: [
        _fake_generation(TURNED), _fake_generation(UPRIGHT)])
    monkeypatch.setattr(generate, "generate_from_inputs", lambda *args, **kwargs: _fake_generation(UPRIGHT))
    result = _cli("ocr", *pages, "-f", "json", "--batch-size", "2", *_family_args("olmocr2", tiny_checkpoint),
                  *FLOAT32)
    assert result.exit_code == 0, result.output
    first, second = map(json.loads, result.stdout.splitlines())
    assert (first["turned_deg"], first["attempts"]) == (90, 2) and "turned_deg" not in second
    assert first["text"] == second["text"] == "# Total\n\n<table><tr><td>42</td></tr></table>"


def test_nanonets_tags_become_fields(tiny_checkpoint, pages, monkeypatch):
    """Nanonets' page number and watermarks leave the text for fields; signatures and images stay where they
    are in the text (signatures also listed); checkboxes are text."""
    from vlmcli.model import generate

    written = ("<watermark>DRAFT</watermark>\nInvoice ☑ paid ☐ due\n<signature>J. Smith</signature>\n"
               "<img>a logo</img>\n<page_number>3/9</page_number>")
    monkeypatch.setattr(generate, "generate_from_inputs", lambda *args, **kwargs: _fake_generation(written))
    result = _cli("ocr", pages[0], "-f", "json", *_family_args("nanonets_ocr2", tiny_checkpoint), *FLOAT32)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["fields"] == {"page_number": "3/9", "watermarks": ["DRAFT"], "signatures": ["J. Smith"]}
    assert record["text"] == "Invoice ☑ paid ☐ due\n<signature>J. Smith</signature>\n<img>a logo</img>"
    assert record["raw_text"] == written


def _training_data(folder: Path, pages: list[Path]) -> Path:
    data = folder / "train.jsonl"
    rows = [{"image": str(pages[0]), "question": "What is this?", "answer": "cat"},
            {"image": str(pages[1]), "text": "dog dog"}]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return data


@pytest.mark.parametrize("family", ["olmocr2", "qwen3_vl"])
def test_training_batch_masks_the_prompt_and_reads_each_row_as_alone(lively, tmp_path, pages, family):
    """finetune's collator on a Qwen family: each row's patches and grid joined, mm_token_type_ids padded with
    the ids (they place the multimodal positions), labels on the answer only (the card's prompt, the text first
    for olmOCR-2), and each row's logits in the padded batch equal to its own (float32)."""
    from vlmcli.finetune.collate import IGNORE_INDEX, Collator
    from vlmcli.finetune.data import load_examples

    from tests.conftest import load_run
    from vlmcli.specs import DType, ModelSpec, PdfSpec, RunSpec

    spec = ModelSpec(model_id=str(lively(CHECKPOINT[family])), offline=True, dtype=DType.float32,
                     family=family if family != CHECKPOINT[family] else None)
    loaded = load_run(RunSpec(model=spec))
    examples, _ = load_examples(_training_data(tmp_path, pages))
    collate = Collator(loaded.processor, loaded.image_token_id, loaded.max_input_px, PdfSpec(), family=loaded.family)
    batch = collate(examples)
    assert batch["image_grid_thw"].shape == (2, 3)
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(dim=1).sum())
    assert batch["mm_token_type_ids"].shape == batch["input_ids"].shape
    tokenizer = loaded.processor.tokenizer
    for row, example in enumerate(examples):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        answer = (labels != IGNORE_INDEX).nonzero().flatten()
        start, end = int(answer[0]), int(answer[-1]) + 1
        assert answer.tolist() == list(range(start, end)) and torch.equal(labels[start:end], ids[start:end])
        assert tokenizer.decode(ids[start:end]) == f"{example.target}<|im_end|>\n"
        assert tokenizer.decode(ids[:start]).endswith("<|im_start|>assistant\n")
    if family == "olmocr2":
        prompt = tokenizer.decode(batch["input_ids"][1])
        assert prompt.index("Attached is one page") < prompt.index("<|vision_start|>")
    with torch.no_grad():
        together = loaded.model(**batch).logits
        for row, example in enumerate(examples):
            alone = collate([example])
            length = alone["input_ids"].shape[1]
            assert torch.allclose(together[row, :length], loaded.model(**alone).logits[0], atol=1e-4)


@pytest.mark.parametrize("family", ["olmocr2", "qwen3_vl"])
def test_finetune_stages_chain_and_ask_loads_the_adapter(lively, tmp_path, pages, family):
    """Stage 1 (LoRA on the language model and the vision blocks, the patch merger trained fully) then stage 2
    --from it; `ask --adapter` reads with the result."""
    common = ["--data", _training_data(tmp_path, pages), "--max-steps", "2", "--save-steps", "2", "--lora-rank", "4",
              "--batch-size", "2", "--grad-accum", "1", "--learning-rate", "0.01", "--full-train-learning-rate", "0.01",
              "--offline"]  # a learning rate that changes the tiny model's tokens within two steps
    first = _cli("finetune", "--stage", "1", "-o", tmp_path / "s1", *_family_args(family, lively), *common)
    assert first.exit_code == 0, first.output
    config = json.loads((tmp_path / "s1" / "adapter_config.json").read_text())
    assert "merger" in config["modules_to_save"] and "visual" in config["target_modules"]
    second = _cli("finetune", "--stage", "2", "-o", tmp_path / "s2", "--from", tmp_path / "s1", *common)
    assert second.exit_code == 0, second.output
    base = _cli("ask", pages[0], QUESTION, *_family_args(family, lively), *FLOAT32)
    adapted = _cli("ask", pages[0], QUESTION, *_family_args(family, lively), *FLOAT32,
                   "--adapter", tmp_path / "s2")
    assert base.exit_code == 0 and adapted.exit_code == 0, adapted.output
    assert adapted.stdout != base.stdout


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_quantize_4bit_loads_and_reads(tmp_path, pages, family):
    """--quantize 4bit: NF4 layers in the language model and the vision tower, and a page is read. The tiny
    checkpoint's vision tower is 32 wide, narrower than the 64-value block of bitsandbytes' CPU kernel (`shape
    '[96, 0]' is invalid`), so this one is built 64 wide, as every real Qwen tower is a multiple of 64."""
    import bitsandbytes as bnb

    from tests.conftest import load_run
    from tools.models.families import PARTS, save_family_checkpoint
    from vlmcli.specs import ModelSpec, Quant, RunSpec

    config, processor, generation = PARTS[family]()
    config.vision_config.hidden_size = 64
    checkpoint = save_family_checkpoint(tmp_path / family, config, processor, generation)
    loaded = load_run(RunSpec(model=ModelSpec(model_id=str(checkpoint), offline=True, quantize=Quant.nf4)))
    for tower in (loaded.model.model.language_model, loaded.model.model.visual.blocks):
        assert any(isinstance(module, bnb.nn.Linear4bit) for module in tower.modules())
    result = _cli("ask", pages[0], QUESTION, "--model", checkpoint, "--quantize", "4bit", *FLOAT32)
    assert result.exit_code == 0, result.output


def test_lora_targets_stay_in_their_towers(tiny_checkpoint):
    """The text regex adapts the language model's projections only; the vision regex the vision blocks only; the
    connectors name the patch mergers."""
    import re

    from transformers import AutoModelForImageTextToText

    from vlmcli.model.families.qwen import QWEN2_5_VL, QWEN3_VL

    for family, per_block in ((QWEN2_5_VL, 5), (QWEN3_VL, 4)):  # qkv, proj and the MLP's 3 or 2 layers
        model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint(family.name))
        linear = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
        text = [name for name in linear if re.fullmatch(family.lora.text, name)]
        vision = [name for name in linear if re.fullmatch(family.lora.vision, name)]
        assert text and all(name.startswith("model.language_model.layers.") for name in text)
        assert len(text) == 7 * model.config.text_config.num_hidden_layers
        assert vision and all(name.startswith("model.visual.blocks.") for name in vision)
        assert len(vision) == per_block * model.config.vision_config.depth
        modules = dict(model.named_modules())
        assert all(any(name.endswith(connector) for name in modules) for connector in family.lora.connector[:2])


def test_olmocr_reads_pages_at_1288_px(tiny_checkpoint, tmp_path):
    """olmOCR-2's card renders a page with its longest side at 1288 px: that is the pixel budget's edge unless
    --longest-edge says otherwise, larger images are fitted to it as the card's recipe resizes them (for reading
    and for training), and the out-of-memory ladder halves it down to 448 px."""
    from PIL import Image
    from vlmcli.finetune.collate import example_images
    from vlmcli.finetune.data import load_examples

    from tools.models.recipes import OLMOCR_LONGEST_PX
    from vlmcli.model.families.qwen import OLMOCR2, QWEN2_5_VL
    from vlmcli.model.generate import fit_pages
    from vlmcli.model.image_only import load_processor
    from vlmcli.specs import PdfSpec, SplitSpec

    processor = load_processor(tiny_checkpoint("qwen2_5_vl"))
    assert OLMOCR2.input_edge_px(processor, SplitSpec()) == OLMOCR_LONGEST_PX
    assert processor.image_processor.size["longest_edge"] == OLMOCR_LONGEST_PX ** 2
    assert OLMOCR2.resolution.lower(processor) == SplitSpec(longest_edge_px=644)
    assert OLMOCR2.input_edge_px(processor, SplitSpec(longest_edge_px=800)) == 800
    assert OLMOCR2.resolution.describe(processor) == {"longest_edge_px": 800, "split": False}
    big = Image.new("RGB", (2000, 1500), "white")
    fitted, = fit_pages(OLMOCR2, [big], OLMOCR_LONGEST_PX)
    scale = OLMOCR_LONGEST_PX / 2000
    assert fitted.size == (1288, 966) and fitted.tobytes() == big.resize(
        (round(2000 * scale), round(1500 * scale))).tobytes()  # the card recipe's resize
    assert fit_pages(QWEN2_5_VL, [big], 1288)[0] is big
    big.save(tmp_path / "big.png")
    (tmp_path / "train.jsonl").write_text(json.dumps({"image": "big.png", "text": "cat"}) + "\n")
    example = load_examples(tmp_path / "train.jsonl")[0][0]
    assert example_images(example, OLMOCR_LONGEST_PX, PdfSpec(), OLMOCR2)[0].size == (1288, 966)


def test_front_matter_turns_only_for_a_stated_quarter():
    from vlmcli.model.families.parsing import front_matter

    assert front_matter(TURNED).turn_deg == 90
    assert front_matter(UPRIGHT).turn_deg == 0
    assert front_matter(TURNED.replace("rotation_correction: 90", "rotation_correction: 45")).turn_deg == 0
    assert front_matter("no front matter").turn_deg == 0


@pytest.mark.parametrize("damage", ["patch size", "image token id", "family"])
def test_a_checkpoint_whose_parts_disagree_gets_one_clear_line(tiny_checkpoint, tmp_path, pages, damage):
    """Processor files from another model (a 16 px patch on a 14 px tower, another image token), or --family of
    another architecture: one line naming both sides and an exit code, before any weights are read."""
    import shutil

    from vlmcli.errors import ExitCode

    folder = shutil.copytree(tiny_checkpoint("qwen2_5_vl"), tmp_path / "checkpoint")
    name, edit = {"patch size": ("processor_config.json", lambda d: d["image_processor"].update(patch_size=16)),
                  "image token id": ("config.json", lambda d: d.update(image_token_id=5)),
                  "family": ("config.json", lambda d: None)}[damage]
    settings = json.loads((folder / name).read_text())
    edit(settings)
    (folder / name).write_text(json.dumps(settings))
    family = ["--model", tiny_checkpoint("qwen3_vl"), "--family", "olmocr2"] if damage == "family" else [
        "--model", folder]
    result = _cli("ask", pages[0], QUESTION, *family, *FLOAT32)
    assert result.exit_code == (ExitCode.usage if damage == "family" else ExitCode.model)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert ("reads qwen2_5_vl checkpoints; this one is qwen3_vl" if damage == "family"
            else f"its config and processor disagree ({damage}:") in result.stderr
