"""Tiny real checkpoints on CPU: vlmcli produces exactly what plain transformers produces."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import always_load, draw_page, load_run
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from tools.models.build import force_loop
from vlmcli import model as model_module
from vlmcli.errors import DependencyError, ModelError, RefusedError
from vlmcli.inputs.documents import page_refs
from vlmcli.inputs.pages import page_images
from vlmcli.pipeline import ask as asking
from vlmcli.pipeline import page
from vlmcli.pipeline.ask import ask
from vlmcli.pipeline.results import PageResult
from vlmcli.pipeline.transcribe import transcribe
from vlmcli.specs import DType, GenerationSpec, ModelSpec, Quant, RunSpec, SplitSpec

pytestmark = pytest.mark.model
QUESTION = "What is written here?"


def _read_page(loaded, ref, run):
    """One page read on its own, band by band, with its retries."""
    return page._run_page(loaded, ref, page.prepare_page(loaded, ref, "Read.", run), run)


def _run(checkpoint, split=None, bands=True, max_new_tokens=12, **model_kwargs) -> RunSpec:
    model_kwargs.setdefault("dtype", DType.float32)  # the same arithmetic as the plain script, on any CPU
    return RunSpec(model=ModelSpec(model_id=str(checkpoint), offline=True, **model_kwargs),
                           split=SplitSpec(split=split, bands=bands),
                           generation=GenerationSpec(max_new_tokens=max_new_tokens))


def _plain_transformers(checkpoint, image, split, max_new_tokens=12) -> list[int]:
    """The model card's recipe, written out by hand: processor + greedy generate."""
    processor = AutoProcessor.from_pretrained(checkpoint)
    if split is not None:
        processor.image_processor.do_image_splitting = split
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch.float32)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[[image]], return_tensors="pt")
    output = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
    new = output[0, inputs["input_ids"].shape[1]:].tolist()
    stop = set(model.generation_config.eos_token_id)
    return new[:-1] if new and new[-1] in stop else new


@pytest.mark.parametrize("family", ["idefics3", "idefics2"])
@pytest.mark.parametrize("split", [None, True, False])
@pytest.mark.parametrize("size", [(20, 20), (100, 60), (60, 200), (333, 41)])
def test_ask_matches_plain_transformers(request, tmp_path, family, split, size):
    checkpoint = request.getfixturevalue(f"tiny_{family}")
    image = draw_page(size, "7")
    path = tmp_path / "image.png"
    image.save(path)
    answer = ask([path], QUESTION, _run(checkpoint, split=split, bands=False))
    assert list(answer.token_ids) == _plain_transformers(checkpoint, image, split)
    assert answer.image_tokens > 0


def test_split_changes_the_visual_tokens(tiny_idefics3, page_png):
    split = ask([page_png], QUESTION, _run(tiny_idefics3, split=True, max_new_tokens=1))
    whole = ask([page_png], QUESTION, _run(tiny_idefics3, split=False, max_new_tokens=1))
    assert split.image_tokens > whole.image_tokens > 0


def test_ask_and_ocr_see_the_same_pixels(tiny_idefics3, pdf_3_pages):
    run = _run(tiny_idefics3)
    loaded = load_run(run)
    ref = page_refs(pdf_3_pages, "2", run.pdf)[0]
    asked = page_images(asking._page(pdf_3_pages, 2, run.pdf), loaded.max_input_px, run.split, run.pdf)
    transcribed = page.prepare_page(loaded, ref, "Read.", run).bands
    assert [a.tobytes() for a in asked] == [t.tobytes() for t in transcribed]


def test_streaming_pieces_make_the_answer(tiny_idefics3, page_png):
    pieces: list[str] = []
    answer = ask([page_png], QUESTION, _run(tiny_idefics3, max_new_tokens=20), on_text=pieces.append)
    assert "".join(pieces).strip() == answer.text


def test_ocr_of_a_pdf_and_an_image(tiny_idefics3, pdf_3_pages, page_png):
    items = list(transcribe([pdf_3_pages, page_png], "Read.", _run(tiny_idefics3), pages="1,3"))
    assert [(i.source.name, i.page_number) for i in items] == [("doc.pdf", 1), ("doc.pdf", 3), ("page.png", 1)]
    assert all(isinstance(i, PageResult) and i.image_tokens > 0 for i in items)


def test_tall_pages_are_banded(tiny_idefics3, tmp_path):
    path = tmp_path / "receipt.png"
    draw_page((60, 400), "TOTAL 12.00").save(path)
    banded = next(transcribe([path], "Read.", _run(tiny_idefics3)))
    whole = next(transcribe([path], "Read.", _run(tiny_idefics3, bands=False)))
    assert banded.bands > 1 and whole.bands == 1
    assert banded.image_tokens > whole.image_tokens


@pytest.mark.parametrize("quantize", [Quant.nf4, Quant.int8])
def test_bitsandbytes_quantization(tiny_idefics3, page_png, quantize):
    import bitsandbytes as bnb

    run = _run(tiny_idefics3, quantize=quantize)
    loaded = load_run(run)
    layer_type = bnb.nn.Linear4bit if quantize is Quant.nf4 else bnb.nn.Linear8bitLt
    assert any(isinstance(m, layer_type) for m in loaded.model.modules())
    answer = ask([page_png], QUESTION, run)
    assert answer.new_tokens > 0


def test_checkpoint_saved_quantized_loads_as_is(tiny_idefics3, tmp_path, page_png):
    import bitsandbytes as bnb

    loaded = model_module.load(ModelSpec(model_id=str(tiny_idefics3), quantize=Quant.nf4, offline=True), SplitSpec())
    saved = tmp_path / "nf4"
    loaded.model.save_pretrained(saved)
    loaded.processor.save_pretrained(saved)
    reloaded = model_module.load(ModelSpec(model_id=str(saved), offline=True), SplitSpec())
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in reloaded.model.modules())


def test_lora_adapter_changes_the_answer(tiny_idefics3, tmp_path, page_png):
    from peft import LoraConfig, get_peft_model

    base = AutoModelForImageTextToText.from_pretrained(tiny_idefics3)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")
    plain = ask([page_png], QUESTION, _run(tiny_idefics3))
    adapted = ask([page_png], QUESTION, _run(tiny_idefics3, adapter=tmp_path / "adapter"))
    assert adapted.token_ids != plain.token_ids


def test_repetition_guard_ends_a_loop(tiny_idefics3, page_png):
    run = _run(tiny_idefics3, max_new_tokens=200)
    loaded = load_run(run)
    force_loop(loaded.model, loaded.processor.tokenizer)
    ref = page_refs(page_png, None, run.pdf)[0]
    result = _read_page(loaded, ref, run)
    assert result.finish_reason == "repetition"
    assert result.new_tokens < 200 and result.text == "a"


def test_unknown_model_offline_is_a_dependency_error(page_png):
    with pytest.raises(DependencyError, match="not in the local cache and --offline is set"):
        ask([page_png], QUESTION, _run("someone/not-a-model"))


def test_missing_checkpoint_directory(tmp_path, page_png):
    run = RunSpec(model=ModelSpec(model_id=str(tmp_path / "nowhere")))
    with pytest.raises(ModelError, match="not a checkpoint directory"):
        ask([page_png], QUESTION, run)


def test_remote_code_is_refused_unless_trusted(tmp_path, page_png):
    """M1: refused without a prompt; --trust-remote-code (ModelSpec.trust_remote_code) is the only way in."""
    folder = tmp_path / "custom"
    folder.mkdir()
    ran = tmp_path / "remote-code-ran"
    (folder / "config.json").write_text(json.dumps({
        "model_type": "my_custom_vlm", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}))
    (folder / "configuration_custom.py").write_text(
        f"import pathlib\npathlib.Path({str(ran)!r}).touch()\n"
        "from transformers import PretrainedConfig\n"
        "class CustomConfig(PretrainedConfig):\n    model_type = 'my_custom_vlm'\n")
    with pytest.raises(RefusedError, match="needs its own Python code") as refused:
        ask([page_png], QUESTION, _run(folder))
    assert "--trust-remote-code" in refused.value.hint
    assert not ran.exists()
    with pytest.raises(ModelError, match="model type 'my_custom_vlm' is not an image-text-to-text model"):
        ask([page_png], QUESTION, _run(folder, trust_remote_code=True))
    assert ran.exists()  # trusted: its code ran (and then the family check refused the model)


def test_pickle_only_weights_are_refused(tiny_idefics3, tmp_path, page_png):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_idefics3, folder)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(RefusedError, match="pickle") as refused:
        ask([page_png], QUESTION, _run(folder))
    assert "--allow-pickle" in refused.value.hint
    # M2 override: read through torch's weights-only unpickler, the same answer as the safetensors original.
    allowed = ask([page_png], QUESTION, _run(folder, allow_pickle=True))
    assert allowed.token_ids == ask([page_png], QUESTION, _run(tiny_idefics3)).token_ids


def test_auto_dtype_is_float32_on_a_cpu_without_bf16(monkeypatch):
    from vlmcli.model import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    assert runtime.dtype_name(DType.auto, "cpu") == "float32"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert runtime.dtype_name(DType.auto, "cpu") == "bfloat16"
    assert runtime.dtype_name(DType.auto, "cpu", for_training=True) == "float32"


def test_cli_ocr_end_to_end(tiny_idefics3, pdf_3_pages, page_png, tmp_path):
    from typer.testing import CliRunner

    from vlmcli.cli import app

    out = tmp_path / "out"
    args = ["ocr", str(pdf_3_pages), str(page_png), "--model", str(tiny_idefics3), "--offline", "--dtype", "float32",
            "--max-new-tokens", "8", "-f", "json", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert sorted(p.name for p in out.iterdir()) == [".vlmcli-lock", ".vlmcli-manifest.jsonl", "doc.pdf.jsonl", "page.png.jsonl"]
    records = [json.loads(line) for line in (out / "doc.pdf.jsonl").read_text().splitlines()]
    assert [r["page_number"] for r in records] == [1, 2, 3]
    assert all(r["image_tokens"] > 0 and 0 < r["new_tokens"] <= 8 and r["finish_reason"] in ("stop", "length")
               for r in records)
    stdout_run = CliRunner().invoke(app, args[:-2])
    assert [json.loads(line)["text"] for line in stdout_run.stdout.splitlines()][:3] == [r["text"] for r in records]


@pytest.mark.parametrize("model_id, code", [("someone/not-a-model", 6), ("{custom}", 7)])
def test_cli_model_errors_exit_codes(tmp_path, page_png, model_id, code):
    from typer.testing import CliRunner

    from vlmcli.cli import app

    if model_id == "{custom}":
        folder = tmp_path / "custom"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "x", "auto_map": {"AutoConfig": "c.C"}}))
        model_id = str(folder)
    result = CliRunner().invoke(app, ["ask", str(page_png), "q", "--model", model_id, "--offline"])
    assert result.exit_code == code
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("vlmcli: error: ")


@pytest.mark.parametrize("family", ["idefics3", "idefics2"])
@pytest.mark.parametrize("size", [(1, 1), (3, 3), (10, 5000), (5000, 10)])
def test_degenerate_image_sizes_are_read(request, tmp_path, family, size):
    path = tmp_path / "odd.png"
    Image.new("RGB", size, "white").save(path)
    item = next(transcribe([path], "Read.", _run(request.getfixturevalue(f"tiny_{family}"), max_new_tokens=2)))
    assert isinstance(item, PageResult) and item.image_tokens > 0


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux script(1) for a terminal")
def test_progress_on_a_terminal_keeps_results_on_stdout(tiny_idefics3, pdf_3_pages, tmp_path):
    """stderr is a terminal (progress bar drawn), stdout a file: every page must land in the file."""
    import subprocess
    import sys

    out = tmp_path / "out.txt"
    command = (f"{sys.executable} -m vlmcli ocr {pdf_3_pages} --model {tiny_idefics3} --offline --dtype float32 "
               f"--max-new-tokens 4 -f json > {out}")
    terminal = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True)
    assert terminal.returncode == 0, terminal.stdout
    assert "Pages" in terminal.stdout  # the bar was drawn on the terminal
    assert [json.loads(line)["page_number"] for line in out.read_text().splitlines()] == [1, 2, 3]


def test_prefetching_changes_nothing_and_isolates_failures(tiny_idefics3, pdf_3_pages, monkeypatch):
    from vlmcli.errors import InputError

    run = _run(tiny_idefics3)
    loaded = load_run(run)
    one_by_one = [_read_page(loaded, ref, run) for ref in page_refs(pdf_3_pages, None, run.pdf)]
    always_load(monkeypatch, loaded)
    together = list(transcribe([pdf_3_pages], "Read.", run))
    assert [(r.text, r.new_tokens) for r in together] == [(r.text, r.new_tokens) for r in one_by_one]

    original = page.page_images

    def page_2_breaks(ref, *args):
        if ref.page_number == 2:
            raise InputError("doc.pdf: page 2 is broken")
        return original(ref, *args)

    monkeypatch.setattr(page, "page_images", page_2_breaks)
    items = list(transcribe([pdf_3_pages], "Read.", run))
    assert [type(i).__name__ for i in items] == ["PageResult", "PageFailure", "PageResult"]
    assert items[2].text == one_by_one[2].text


@pytest.mark.parametrize("family", ["idefics3", "idefics2"])
def test_same_tokens_as_the_unoptimised_eager_path(request, tmp_path, family):
    """vlmcli's fast path (sdpa, prefetch, guard, streamer) gives the tokens of the card's eager-attention recipe."""
    checkpoint = request.getfixturevalue(f"tiny_{family}")
    image = draw_page((120, 90), "12.50")
    image.save(tmp_path / "p.png")
    processor = AutoProcessor.from_pretrained(checkpoint)
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch.float32, attn_implementation="eager")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Read."}]}]
    inputs = processor(text=[processor.apply_chat_template(messages, add_generation_prompt=True)], images=[[image]],
                       return_tensors="pt")
    eager = model.generate(**inputs, do_sample=False, max_new_tokens=12)[0, inputs["input_ids"].shape[1]:].tolist()
    stop = set(model.generation_config.eos_token_id)
    eager = eager[:-1] if eager and eager[-1] in stop else eager
    item = next(transcribe([tmp_path / "p.png"], "Read.", _run(checkpoint, bands=False)))
    answer = ask([tmp_path / "p.png"], "Read.", _run(checkpoint, bands=False))
    assert list(answer.token_ids) == eager and item.new_tokens == answer.new_tokens


def test_quantized_load_releases_the_file_and_keeps_the_tokens(tiny_idefics3, tmp_path):
    """Copying the unquantized leftovers out of the mapped file changes no token."""
    from transformers import BitsAndBytesConfig

    image = draw_page((120, 90), "12.50")
    image.save(tmp_path / "p.png")
    run = _run(tiny_idefics3, bands=False, quantize=Quant.nf4)
    answer = ask([tmp_path / "p.png"], QUESTION, run)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.float32, llm_int8_skip_modules=["lm_head"])
    plain = AutoModelForImageTextToText.from_pretrained(tiny_idefics3, dtype=torch.float32, quantization_config=quant)
    processor = AutoProcessor.from_pretrained(tiny_idefics3)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    inputs = processor(text=[processor.apply_chat_template(messages, add_generation_prompt=True)], images=[[image]],
                       return_tensors="pt")
    new = plain.generate(**inputs, do_sample=False, max_new_tokens=12)[0, inputs["input_ids"].shape[1]:].tolist()
    stop = set(plain.generation_config.eos_token_id)
    assert list(answer.token_ids) == (new[:-1] if new and new[-1] in stop else new)


@pytest.mark.parametrize("damage", ["truncated", "header too large"])
def test_corrupt_weights_name_the_file(tiny_idefics3, tmp_path, page_png, damage):
    """M4: a truncated download or a bloated header is a one-line error naming the file (exit 9), not a Rust panic."""
    from typer.testing import CliRunner

    from vlmcli.cli import app

    folder = tmp_path / "damaged"
    shutil.copytree(tiny_idefics3, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\xff" * 8 + b"{}")
    result = CliRunner().invoke(app, ["ask", str(page_png), "q", "--model", str(folder), "--offline"])
    assert result.exit_code == 9 and result.stderr.count("\n") == 1
    assert f"{weights}: corrupt weights" in result.stderr
