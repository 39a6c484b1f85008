"""LightOnOCR-2, PaddleOCR-VL and GLM-OCR (model/families/lighton_ocr.py, paddleocr_vl.py, glm_ocr.py) on tiny
checkpoints of their architectures whose answers depend on the page and the prompt (tools/models/lively.py):
`ask` and `ocr` give the tokens of each model card's recipe through plain transformers, boxes reach `-f json`,
batches equal pages one by one, `--resume`, 4-bit loading, the staged fine-tuning and its adapters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import always_load, draw_page, load_run
from PIL import Image
from typer.testing import CliRunner

from tools.models import recipes
from vlmcli.cli import app
from vlmcli.model.families import by_name
from vlmcli.specs import DType, GenerationSpec, ModelSpec, RunSpec, SplitSpec

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
FAMILIES = ("lighton_ocr", "paddleocr_vl", "glm_ocr")
NEW_TOKENS = 8
QUESTION = "What is the total?"


@pytest.fixture(scope="module")
def lively(tmp_path_factory):
    """`lively(family)`: the family's tiny checkpoint, built once per module."""
    from tools.models.lively import build_lively_checkpoint

    built: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in built:
            built[family] = build_lively_checkpoint(tmp_path_factory.mktemp(f"lively-{family}"), family)
        return built[family]

    return make


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> list[Path]:
    """Pages no larger than the tiny processors' 112 px, so vlmcli and the recipes give the processor the same
    pixels (nothing is resized before it); different shapes, different numbers of image tokens."""
    folder = tmp_path_factory.mktemp("pages")
    paths = []
    for index, (size, text) in enumerate([((84, 112), "Total 12.50"), ((112, 84), "ab"), ((100, 60), "7")]):
        paths.append(folder / f"p{index}.png")
        draw_page(size, text).save(paths[-1])
    return paths


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _model_args(folder: Path) -> list:
    return ["--model", folder, "--offline", "--dtype", "float32", "--max-new-tokens", NEW_TOKENS]


def _run(folder: Path, batch_size: int = 1, **model) -> RunSpec:
    return RunSpec(model=ModelSpec(model_id=str(folder), offline=True, dtype=DType.float32, **model),
                   split=SplitSpec(bands=False), generation=GenerationSpec(max_new_tokens=NEW_TOKENS),
                   batch_size=batch_size)


END_OF_TURN = ("<|user|>", "<|endoftext|>")  # GLM-OCR's generation_config eos


def _shown(family: str, card_text: str) -> str:
    """What vlmcli shows of the card's decoded text: the same, stripped; GLM-OCR's card keeps the special tokens,
    vlmcli keeps them too except the end-of-turn token that stopped the answer."""
    text = card_text.strip()
    if family == "glm_ocr":
        for token in END_OF_TURN:
            text = text.removesuffix(token)
    return text.strip()


@pytest.mark.parametrize("family", FAMILIES)
def test_recognised_from_the_checkpoint_files(lively, family):
    from vlmcli.model.profile import load_profile

    assert load_profile(ModelSpec(model_id=str(lively(family)), offline=True)).family.name == family


@pytest.mark.parametrize(("family", "task"), [("lighton_ocr", None), ("paddleocr_vl", None), ("paddleocr_vl", "table"),
                                              ("glm_ocr", None), ("glm_ocr", "formula")])
def test_ocr_json_is_the_card_recipe(lively, pages, family, task):
    """`vlmcli ocr -f json` (the family's page prompt, or --task's) writes the card recipe's text and token count."""
    folder = lively(family)
    model, processor = recipes.load(folder)
    options = {"task": task} if task else {}
    expected = [recipes.RECIPES[family](model, processor, Image.open(path), max_new_tokens=NEW_TOKENS, **options)
                for path in pages]
    assert len({tuple(e.token_ids) for e in expected}) > 1  # the pages' answers differ: the image is read
    result = _cli("ocr", *pages, "-f", "json", "--no-cache", *_model_args(folder), *(["--task", task] if task else []))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["new_tokens"] for r in records] == [len(e.token_ids) for e in expected]
    assert [r["text"] for r in records] == [_shown(family, e.text) for e in expected]
    assert all("boxes" not in r for r in records)


@pytest.mark.parametrize("family", FAMILIES)
def test_ask_is_the_card_conversation(lively, pages, family):
    """`vlmcli ask IMAGE QUESTION`: the card's conversation with the question after the image, greedy."""
    from vlmcli.pipeline.ask import ask

    folder = lively(family)
    model, processor = recipes.load(folder)
    messages = [{"role": "user", "content": [{"type": "image", "image": Image.open(pages[0])},
                                             {"type": "text", "text": QUESTION}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt")
    inputs.pop("token_type_ids", None)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    expected = output[0, inputs["input_ids"].shape[1]:].tolist()
    pieces: list[str] = []
    answer = ask([pages[0]], QUESTION, _run(folder), on_text=pieces.append)
    assert "".join(pieces).strip() == answer.text  # streamed as decoded
    stops = model.generation_config.eos_token_id
    ended = expected and expected[-1] in (stops if isinstance(stops, list) else [stops])
    assert list(answer.token_ids) == (expected[:-1] if ended else expected)  # the stop token is not the answer's
    shown = _cli("ask", pages[0], QUESTION, "-f", "json", *_model_args(folder))
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) | {"seconds": 0} == {
        "answer": answer.text, "image_tokens": answer.image_tokens, "new_tokens": len(expected), "seconds": 0,
        "finish_reason": answer.finish_reason}


@pytest.mark.parametrize(("family", "pieces", "shown"), [
    ("lighton_ocr", ["Intro\n![image](image_1.png)120,80,560,400\nEnd", "<|im_end|>"],
     "Intro\n![image](image_1.png)\nEnd"),
    ("paddleocr_vl", ["Total 12", "</s>"], "Total 12"),
    ("glm_ocr", ["$x^2$", "<|begin_of_box|>", "12", "<|end_of_box|>", "<|user|>"],
     "$x^2$<|begin_of_box|>12<|end_of_box|>"),
])
def test_what_a_page_shows_of_an_answer(lively, pages, monkeypatch, family, pieces, shown):
    """The decoding each family's user sees, on a given answer: LightOnOCR's bbox figures become boxes in -f json
    (0-1000 grid, as fractions of the page); PaddleOCR-VL drops the final end token; GLM-OCR keeps the special
    tokens as its card decodes them, but not the end-of-turn token its card's decoding shows."""
    from vlmcli.model import generate
    from vlmcli.model.image_only import load_processor

    folder = lively(family)
    tokenizer = load_processor(folder).tokenizer
    ids = [i for piece in pieces for i in ([tokenizer.convert_tokens_to_ids(piece)] if piece in tokenizer.get_vocab()
                                           else tokenizer.encode(piece, add_special_tokens=False))]
    written = torch.tensor([ids])
    monkeypatch.setattr(generate, "_greedy", lambda loaded, inputs, *rest: torch.cat(
        [inputs["input_ids"], written.expand(inputs["input_ids"].shape[0], -1)], dim=1))
    result = _cli("ocr", pages[0], "-f", "json", "--no-cache", *_model_args(folder))
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["text"], record["finish_reason"], record["new_tokens"]) == (shown, "stop", len(ids))
    if family == "lighton_ocr":
        assert record["raw_text"] == pieces[0]
        assert record["boxes"] == [{"label": "image", "text": "image_1.png", "bbox": [0.12, 0.08, 0.56, 0.4]}]
    if family == "glm_ocr":
        assert tokenizer.decode(ids, skip_special_tokens=False) == "".join(pieces)  # the card's decoding


@pytest.mark.parametrize("family", FAMILIES)
def test_a_batch_of_two_equals_pages_one_by_one(lively, pages, monkeypatch, family):
    from vlmcli.pipeline.transcribe import transcribe

    folder = lively(family)
    always_load(monkeypatch, load_run(_run(folder)))
    instruction = by_name(family).instruction()
    fields = [[(i.text, i.new_tokens, i.image_tokens) for i in transcribe(pages, instruction, _run(folder, size))]
              for size in (1, 2)]
    assert fields[0] == fields[1]
    assert len({image_tokens for _, _, image_tokens in fields[0]}) > 1  # rows of different lengths were padded


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_merged_by_hand_equal_the_processors_own_batch(lively, pages, family):
    from vlmcli.model.generate import build_inputs, merge_rows

    loaded = load_run(_run(lively(family)))
    images = [Image.open(path).convert("RGB") for path in pages]
    messages = loaded.family.messages(loaded.family.instruction(), 1)
    merged = merge_rows(loaded, [build_inputs(loaded, messages, [image]) for image in images])
    text = loaded.family.prompt(loaded.processor, messages)
    batch = loaded.processor(text=[text] * len(images), images=[[image] for image in images], padding=True,
                             padding_side="left", return_tensors="pt")
    assert set(merged) == set(batch)
    for key, value in merged.items():
        assert torch.equal(value, batch[key].to(value.dtype)), key


@pytest.mark.parametrize("family", FAMILIES)
def test_a_resumed_run_reads_nothing_again(lively, pages, tmp_path, monkeypatch, family):
    from vlmcli import model
    from vlmcli.jobs.manifest import MANIFEST_NAME

    folder = lively(family)
    first = _cli("ocr", *pages[:2], "-o", tmp_path / "out", "-f", "json", *_model_args(folder))
    assert first.exit_code == 0, first.output
    assert (tmp_path / "out" / MANIFEST_NAME).is_file()
    written = _outputs(tmp_path / "out")
    assert set(written) == {"p0.png.jsonl", "p1.png.jsonl"}
    monkeypatch.setattr(model, "load", lambda spec, split, **kw: pytest.fail("nothing is left to read"))
    again = _cli("ocr", *pages[:2], "-o", tmp_path / "out", "-f", "json", "--resume", *_model_args(folder))
    assert again.exit_code == 0, again.output
    assert "2 pages ok (2 from the manifest), 0 failed" in again.stderr
    assert _outputs(tmp_path / "out") == written


def _outputs(folder: Path) -> dict[str, bytes]:
    """The output files (the manifest, a dot file, records the rerun)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


@pytest.mark.parametrize("family", FAMILIES)
def test_quantize_4bit_loads_and_reads(lively, pages, family):
    import bitsandbytes as bnb

    from vlmcli.pipeline.ask import ask
    from vlmcli.specs import Quant

    run = _run(lively(family), quantize=Quant.nf4)
    loaded = load_run(run)
    quantized = {name for name, module in loaded.model.named_modules() if isinstance(module, bnb.nn.Linear4bit)}
    assert any(".language_model." in name for name in quantized) and any(".vision" in name or ".visual." in name
                                                                          for name in quantized)
    assert ask([pages[0]], QUESTION, run).new_tokens > 0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Solid-colour pages, each with a question and a transcription."""
    folder = tmp_path_factory.mktemp("data")
    rows = []
    for color, word in {"red": "cat", "green": "dog", "blue": "book"}.items():
        Image.new("RGB", (64, 48), color).save(folder / f"{color}.png")
        rows.append({"image": f"{color}.png", "question": "What is this?", "answer": word})
        rows.append({"image": f"{color}.png", "text": f"{word} {word}"})
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "train.jsonl"


@pytest.mark.parametrize("family", FAMILIES)
def test_an_answer_is_trained_to_end_at_a_stop_token(lively, dataset, family):
    """Label masking in the family's template: only the answer and the end token generation stops at (GLM's
    template writes none after an answer: the family's <|user|> is appended)."""
    from vlmcli.finetune.collate import IGNORE_INDEX, Collator
    from vlmcli.finetune.data import load_examples

    from vlmcli.specs import PdfSpec

    loaded = load_run(_run(lively(family)))
    examples = load_examples(dataset)[0][:2]
    batch = Collator(loaded.processor, loaded.image_token_id, loaded.max_input_px, PdfSpec(), family=loaded.family)(
        examples)
    tokenizer = loaded.processor.tokenizer
    for row, example in enumerate(examples):
        answer = batch["input_ids"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        stops = [i for i, token in enumerate(answer) if token in loaded.stop_token_ids]
        assert stops, tokenizer.decode(answer)
        assert tokenizer.decode(answer[:stops[0]]).strip() == example.target
    assert loaded.model(**batch).loss.isfinite()


@pytest.mark.parametrize("family", FAMILIES)
def test_stages_1_and_2_train_and_ask_loads_the_adapter(lively, dataset, pages, tmp_path, family):
    folder = lively(family)
    common = ["--data", dataset, "--max-steps", "2", "--save-steps", "2", "--lora-rank", "4", "--batch-size", "2",
              "--grad-accum", "1", "--offline"]
    first = _cli("finetune", "--stage", "1", "-o", tmp_path / "s1", "--model", folder, *common)
    assert first.exit_code == 0, first.output
    second = _cli("finetune", "--stage", "2", "-o", tmp_path / "s2", "--from", tmp_path / "s1", *common)
    assert second.exit_code == 0, second.output
    lora = by_name(family).lora
    for stage in ("s1", "s2"):
        config = json.loads((tmp_path / stage / "adapter_config.json").read_text())
        assert config["target_modules"] == lora.regex(with_vision=True)  # stages 1-2 adapt the vision tower too
        assert config["modules_to_save"] == list(lora.connector)
    adapted = _cli("ask", pages[0], QUESTION, "--adapter", tmp_path / "s2", "-f", "json", *_model_args(folder))
    assert adapted.exit_code == 0, adapted.output
    base, tuned = (load_run(_run(folder, adapter=adapter)) for adapter in (None, tmp_path / "s2"))
    weights = dict(base.model.named_parameters())
    assert any(not torch.equal(weights[name], value) for name, value in tuned.model.named_parameters()
               if name in weights)  # the adapters (both stages, merged) changed the weights


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_targets_are_the_language_model_and_vision_projections(lively, family):
    """The text regex takes each language-model layer's attention and MLP projections (GLM: the fused gate_up),
    the vision regex the tower's, neither anything else; the connector is a module of the model."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(lively(family))
    names = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    lora = by_name(family).lora
    text = [name for name in names if re.fullmatch(lora.text, name)]
    vision = [name for name in names if re.fullmatch(lora.vision, name)]
    layers = model.config.get_text_config().num_hidden_layers
    assert len(text) == layers * (6 if family == "glm_ocr" else 7)
    assert all(".language_model.layers." in name for name in text)
    assert vision and not set(vision) & set(text) and all(".language_model." not in name for name in vision)
    assert (family == "glm_ocr") == any(name.endswith("gate_up_proj") for name in text)
    assert all(any(name.split(".")[-1] == connector for name, _ in model.named_modules())
               for connector in lora.connector)


def test_a_checkpoint_whose_config_and_processor_disagree_is_refused(lively, pages, tmp_path):
    """A processor from another checkpoint, or a config naming another image token: one line and exit 9 at load,
    not a shape error from inside the model at the first page."""
    import shutil

    from vlmcli.errors import ExitCode

    other = shutil.copytree(lively("lighton_ocr"), tmp_path / "lighton-with-paddle-processor")
    for name in ("processor_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(lively("paddleocr_vl") / name, other / name)
    renumbered = shutil.copytree(lively("glm_ocr"), tmp_path / "glm-with-another-image-token")
    config = json.loads((renumbered / "config.json").read_text())
    (renumbered / "config.json").write_text(json.dumps({**config, "image_token_id": 5}))
    for folder, token in ((other, "<|IMAGE_PLACEHOLDER|>"), (renumbered, "<|image|>")):
        result = _cli("ocr", pages[0], *_model_args(folder))
        assert result.exit_code == ExitCode.model, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("vlmcli: error:")]
        assert len(errors) == 1 and "Traceback" not in result.stderr
        assert "config and processor disagree" in errors[0] and token in errors[0]


def test_tasks_are_the_cards_prompts(lively, pages):
    from vlmcli.errors import ExitCode, UsageError

    paddle, glm = by_name("paddleocr_vl"), by_name("glm_ocr")
    assert [paddle.instruction(task=t) for t in ("ocr", "table", "formula", "chart", "spotting", "seal")] == [
        "OCR:", "Table Recognition:", "Formula Recognition:", "Chart Recognition:", "Spotting:", "Seal Recognition:"]
    assert [glm.instruction(task=t) for t in ("text", "formula", "table")] == [
        "Text Recognition:", "Formula Recognition:", "Table Recognition:"]
    assert paddle.instruction() == "OCR:" and glm.instruction() == "Text Recognition:"
    assert by_name("lighton_ocr").instruction() is None  # the page image alone
    with pytest.raises(UsageError, match="no such task"):
        glm.instruction(task="chart")
    refused = _cli("ocr", pages[0], "--task", "chart", *_model_args(lively("glm_ocr")))
    assert refused.exit_code == ExitCode.usage and "text, formula, table" in refused.stderr


def test_glm_pixel_budget_counts_one_frame_of_two():
    """Glm46V's image processor bounds an image's two temporal frames together: `--longest-edge E` budgets 2 E^2
    pixels so a page of longest edge E is read as rendered, as PaddleOCR-VL's one-frame budget reads it; the
    stand-ins' real budgets are PaddleOCR-VL's 2,822,400 px (1680 px pages) and GLM-OCR's 2 x 2194^2 px."""
    from tools.models.family_tokenizers import tiny_tokenizer
    from tools.models.standins import standin_processor

    page = Image.new("RGB", (448, 336), "white")
    for family in ("paddleocr_vl", "glm_ocr"):
        processor = standin_processor(family, tiny_tokenizer(family))
        knob = by_name(family).resolution
        edge_px = {"paddleocr_vl": 1680, "glm_ocr": 2194}[family]
        assert knob.configure(processor, SplitSpec()) == edge_px
        assert knob.lower(processor) == SplitSpec(longest_edge_px=edge_px // 2)  # out of memory: half the edge
        assert knob.configure(processor, SplitSpec(longest_edge_px=448)) == 448
        grid = processor.image_processor(images=[page], return_tensors="pt")["image_grid_thw"]
        assert grid[0].tolist()[1:] == [336 // 14, 448 // 14], family  # not shrunk
        assert knob.lower(processor) is None  # the ladder's floor


def test_lighton_reads_pages_at_the_checkpoints_1540_px():
    """LightOnOCR-2-1B's processor says longest_edge 1540 (the card's render size): pages are rendered for it;
    --longest-edge overrides it, and the out-of-memory ladder halves it."""
    from tools.models.family_tokenizers import tiny_tokenizer
    from tools.models.standins import standin_processor

    processor = standin_processor("lighton_ocr", tiny_tokenizer("lighton_ocr"))
    knob = by_name("lighton_ocr").resolution
    assert knob.configure(processor, SplitSpec()) == 1540
    assert knob.lower(processor) == SplitSpec(longest_edge_px=770)
    assert knob.configure(processor, SplitSpec(longest_edge_px=1024)) == 1024
    assert processor.image_processor.size["longest_edge"] == 1024


@pytest.mark.parametrize("family", FAMILIES)
def test_the_vision_towers_linears_are_packed_and_read_the_same_tokens(lively, pages, monkeypatch, family):
    """packed_linear's equivalence for this family (levers/registry.py PACKED_OCR): on an AVX2 CPU in float32 the
    tower's and connector's nn.Linear layers are oneDNN's packed ones, the language model's are not, and a page
    reads the same tokens as with the lever off."""
    from vlmcli.model import runtime
    from vlmcli.model.families import by_name
    from vlmcli.model.levers import registry
    from vlmcli.model.levers.packed_linear import PackedLinear
    from vlmcli.pipeline.ask import ask

    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx", "avx2", "fma"}))
    run = _run(lively(family))
    loaded = load_run(run)
    inner = loaded.model.model
    parts = by_name(family).vision_parts
    packed = [m for part in parts for m in getattr(inner, part).modules() if isinstance(m, PackedLinear)]
    plain = [m for part in parts for m in getattr(inner, part).modules() if type(m) is torch.nn.Linear]
    assert packed and not plain and "packed_linear" in loaded.resolved.lever_names
    assert not any(isinstance(m, PackedLinear) for m in inner.language_model.modules())
    with_lever = [ask([page], QUESTION, run).token_ids for page in pages]
    monkeypatch.setenv(registry.SKIP_ENV, "packed_linear")
    without = [ask([page], QUESTION, run).token_ids for page in pages]
    assert with_lever == without and len(set(map(tuple, without))) > 1
