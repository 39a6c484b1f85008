"""Batch OCR that loses nothing: resume by manifest, out-of-memory and loop retries, time limits, fail-fast, signals."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import draw_page
from typer.testing import CliRunner

from vlmcli import model
from vlmcli.cache.keys import settings_fingerprint
from vlmcli.cli import app
from vlmcli.errors import EncryptedPdfError, ExitCode
from vlmcli.files import TEMP_MARK
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs import manifest
from vlmcli.jobs import ocr as ocr_job
from vlmcli.model import generate
from vlmcli.pipeline import page
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.specs import (
    GenerationSpec,
    KVCache,
    ModelSpec,
    OutputFormat,
    RunSpec,
    SplitSpec,
)

runner = CliRunner()


@pytest.fixture
def folder(tmp_path) -> Path:
    """A 3-page PDF and two images in a folder (5 pages)."""
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    pages = [draw_page((300, 400), f"page {n}") for n in (1, 2, 3)]
    pages[0].save(inbox / "doc.pdf", save_all=True, append_images=pages[1:], resolution=72)
    draw_page((200, 120), "receipt 12.50").save(inbox / "a.png")
    draw_page((120, 200), "note").save(inbox / "sub" / "b.png")
    return inbox


def _ocr(checkpoint, *args, fmt="text"):
    return runner.invoke(app, ["ocr", *map(str, args), "--model", str(checkpoint), "--offline", "--dtype", "float32",
                               "--max-new-tokens", "6", "-f", fmt])


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name != ocr_job.FAILURE_REPORT_NAME}


def _count_pages_read(monkeypatch, interrupt_on: int | None = None) -> list[int]:
    """Count the pages the model reads (not reused from the manifest); Ctrl-C while reading page `interrupt_on`."""
    calls: list[int] = []
    real = page._run_page

    def counted(loaded, ref, prepared, run):
        calls.append(ref.page_number)
        if interrupt_on is not None and len(calls) == interrupt_on:
            raise KeyboardInterrupt
        return real(loaded, ref, prepared, run)

    monkeypatch.setattr(page, "_run_page", counted)
    return calls


@pytest.mark.model
def test_interrupted_then_resumed_is_byte_identical(tiny_idefics3, folder, tmp_path, monkeypatch):
    """O2/O5: Ctrl-C on page 3 exits 130 with pages 1-2 in the manifest and no temporary file; --resume
    reads exactly the 3 others and writes what a clean run writes; a second --resume reads nothing."""
    clean = _ocr(tiny_idefics3, folder, "-o", tmp_path / "clean")
    assert clean.exit_code == 0, clean.output
    assert clean.stderr.splitlines()[-1] == "vlmcli: 5 pages ok, 0 failed"
    out = tmp_path / "out"
    _count_pages_read(monkeypatch, interrupt_on=3)
    interrupted = _ocr(tiny_idefics3, folder, "-o", out)
    assert interrupted.exit_code == ExitCode.interrupted and "interrupted" in interrupted.stderr
    assert len(manifest.done_keys(out / manifest.MANIFEST_NAME)) == 2
    assert not list(out.rglob("*.tmp"))
    calls = _count_pages_read(monkeypatch)
    resumed = _ocr(tiny_idefics3, folder, "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert len(calls) == 3 and "5 pages ok (2 from the manifest), 0 failed" in resumed.stderr
    assert _outputs(out) == _outputs(tmp_path / "clean")
    monkeypatch.setattr(model, "load", lambda spec, split, **kw: pytest.fail("nothing is left to read"))
    again = _ocr(tiny_idefics3, folder, "-o", out, "--resume")
    assert again.exit_code == 0 and _outputs(out) == _outputs(tmp_path / "clean")


@pytest.mark.model
def test_resume_inside_one_pdf_and_changed_settings_recompute(tiny_idefics3, folder, tmp_path, monkeypatch):
    """Resume is per page of a PDF; another prompt, or changed input content, reads the pages again."""
    pdf, out = folder / "doc.pdf", tmp_path / "out"
    _count_pages_read(monkeypatch, interrupt_on=2)
    assert _ocr(tiny_idefics3, pdf, "-o", out, fmt="json").exit_code == ExitCode.interrupted
    calls = _count_pages_read(monkeypatch)
    assert _ocr(tiny_idefics3, pdf, "-o", out, "--resume", fmt="json").exit_code == 0
    assert calls == [2, 3]
    records = [json.loads(line) for line in (out / "doc.pdf.jsonl").read_text().splitlines()]
    assert [r["page_number"] for r in records] == [1, 2, 3]
    calls.clear()
    assert _ocr(tiny_idefics3, pdf, "-o", out, "--resume", "--prompt", "Only the title.").exit_code == 0
    assert len(calls) == 3
    calls.clear()
    pages = [draw_page((300, 400), f"other {n}") for n in (1, 2, 3)]
    pages[0].save(pdf, save_all=True, append_images=pages[1:], resolution=72)
    assert _ocr(tiny_idefics3, pdf, "-o", out, "--resume", "--prompt", "Only the title.").exit_code == 0
    assert len(calls) == 3


@pytest.mark.model
def test_a_resume_after_changing_the_dtype_reads_again_and_says_why(tiny_idefics3, folder, tmp_path, monkeypatch):
    """The fingerprint holds the resolved dtype and levers: pages done in float32 are read again in bfloat16,
    with one note saying how many and what changed; the same settings again read nothing."""
    pdf, out = folder / "doc.pdf", tmp_path / "out"

    def ocr(dtype: str, *extra: str):
        return runner.invoke(app, ["ocr", str(pdf), "-o", str(out), "--model", str(tiny_idefics3), "--offline",
                                   "--dtype", dtype, "--max-new-tokens", "6", *extra])

    calls = _count_pages_read(monkeypatch)
    first = ocr("float32", "-v")
    assert first.exit_code == 0 and len(calls) == 3
    assert "vlmcli: family: smolvlm; cpu, float32; levers: lean_processor, " in first.stderr  # -v names them
    calls.clear()
    changed = ocr("bfloat16", "--resume")
    assert changed.exit_code == 0 and len(calls) == 3
    notes = [line for line in changed.stderr.splitlines() if "under other settings" in line]
    assert len(notes) == 1 and notes[0].startswith(
        "vlmcli: resume: 3 page(s) done under other settings are read again (dtype float32 -> bfloat16; levers ")
    calls.clear()
    same = ocr("bfloat16", "--resume")
    assert same.exit_code == 0 and calls == [] and "under other settings" not in same.stderr
    assert "3 pages ok (3 from the manifest)" in same.stderr
    monkeypatch.setenv("VLMCLI_SKIP_LEVERS", "all")  # the off switch is a setting like any other
    plain = ocr("bfloat16", "--resume")
    assert plain.exit_code == 0 and len(calls) == 3
    assert "(levers lean_processor,heap,attention,patch_layout,image_features -> none)" in plain.stderr


def test_the_key_covers_model_revision_adapter_prompt_resolution(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v1")
    base = ocr_job.OcrRequest(inputs=(), instruction="Read.", run=RunSpec(model=ModelSpec(adapter=adapter)))

    def fingerprint(request) -> str:
        return settings_fingerprint(ocr_job.run_settings(request))

    def changed(**run_changes) -> ocr_job.OcrRequest:
        return dataclasses.replace(base, run=dataclasses.replace(base.run, **run_changes))

    variants = [
        changed(model=ModelSpec(model_id="other/model", adapter=adapter)),
        changed(model=ModelSpec(revision="abc123", adapter=adapter)),
        changed(model=ModelSpec()),
        dataclasses.replace(base, instruction="Read the table."),
        changed(split=SplitSpec(longest_edge_px=1024)),
        changed(split=SplitSpec(split=False)),
        changed(split=SplitSpec(bands=False)),
        changed(generation=GenerationSpec(max_new_tokens=99)),
    ]
    keys = {fingerprint(base), *map(fingerprint, variants)}
    assert len(keys) == 1 + len(variants)
    before = fingerprint(base)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v2")  # retrained in place, same size
    assert fingerprint(base) != before
    # How long a page may take is not part of what it says.
    assert fingerprint(changed(page_timeout_s=5.0)) == fingerprint(base)
    # The default cache keeps the keys of manifests written before it could be chosen; a chosen one is recorded.
    assert "kv_cache" not in ocr_job.run_settings(base) and "kv_cache" not in ocr_job.run_settings(base)["generation"]
    chosen = {fingerprint(changed(generation=GenerationSpec(kv_cache=cache))) for cache in (KVCache.static, KVCache.dynamic)}
    assert len(chosen | {fingerprint(base)}) == 3


def test_manifest_drops_a_torn_line_and_keeps_appending(tmp_path):
    path = tmp_path / manifest.MANIFEST_NAME
    with manifest.Manifest(path, resume=False) as written:
        written.record_done("k1", {"text": "one"})
        written.record_done("k2", {"text": "two"})
    with open(path, "a") as handle:
        handle.write('{"v": 1, "key": "k3", "rec')  # power cut in the middle of a line
    with manifest.Manifest(path, resume=True) as reopened:
        assert reopened.dropped_lines == 1 and len(reopened) == 2 and reopened.get("k2") == {"text": "two"}
        reopened.record_done("k3", {"text": "three"})
    with manifest.Manifest(path, resume=True) as last:
        assert (last.dropped_lines, len(last), last.get("k3")) == (0, 3, {"text": "three"})
    with manifest.Manifest(path, resume=False) as fresh:  # without --resume everything is read again
        assert len(fresh) == 0


def _loaded_with(monkeypatch, fake_generate):
    """Loading gives the real tiny model whose `model.generate` is `fake_generate(real, **kwargs)`."""
    real_load = model.load

    def load(spec, split, **kwargs):
        loaded = real_load(spec, split, **kwargs)
        real = loaded.model.generate
        loaded.model.generate = lambda **kwargs: fake_generate(real, **kwargs)
        return loaded

    monkeypatch.setattr(model, "load", load)


@pytest.mark.model
def test_out_of_memory_retries_with_fewer_sub_images(tiny_idefics3, folder, tmp_path, monkeypatch):
    import torch

    clean = _ocr(tiny_idefics3, folder / "a.png", fmt="json")
    calls: list[int] = []

    def first_call_runs_out(real, **kwargs):
        # generate gets the images encoded (vlmcli/vision.py): count their feature vectors in this attempt
        calls.append(sum(len(f) for f in kwargs["mm_encoder_outputs"]["image"].pooler_output))
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(**kwargs)

    _loaded_with(monkeypatch, first_call_runs_out)
    result = _ocr(tiny_idefics3, folder / "a.png", fmt="json")
    assert result.exit_code == 0, result.output
    record, before = json.loads(result.stdout), json.loads(clean.stdout)
    assert calls[1] < calls[0] and record["attempts"] == 2
    assert record["longest_edge_px"] == before["longest_edge_px"] // 2 and record["split"] is True
    assert record["image_tokens"] < before["image_tokens"]


@pytest.mark.model
def test_out_of_memory_at_every_resolution_fails_the_page_only(tiny_idefics3, folder, tmp_path, monkeypatch):
    import torch

    def always_out(real, **kwargs):
        raise torch.OutOfMemoryError("out of memory")

    _loaded_with(monkeypatch, always_out)
    out = tmp_path / "out"
    result = _ocr(tiny_idefics3, folder / "a.png", "-o", out)
    assert result.exit_code == ExitCode.resource
    assert "a.png: out of memory while generating, down to 32 px without sub-images (page 1); skipped" in result.stderr
    report = [json.loads(line) for line in (out / ocr_job.FAILURE_REPORT_NAME).read_text().splitlines()]
    # 64 px split -> 32 px (one sub-image) -> no splitting -> nothing lower: three attempts
    assert [(r["category"], r["attempts"], r["page_number"]) for r in report] == [("out_of_memory", 3, 1)]
    assert result.stderr.splitlines()[-1].startswith("vlmcli: 0 pages ok, 1 failed; failures listed in ")


@pytest.mark.model
def test_a_looping_band_is_retried_once_with_another_decoding(tiny_idefics3, folder, monkeypatch):
    """G1: the first pass loops; the retry uses the repetition penalty and its text is kept."""
    specs: list[GenerationSpec] = []
    real = generate.generate_from_inputs

    def loops_once(loaded, inputs, spec, on_text=None):
        specs.append(spec)
        result = real(loaded, inputs, spec, on_text)
        return dataclasses.replace(result, finish_reason="repetition") if len(specs) == 1 else result

    monkeypatch.setattr(generate, "generate_from_inputs", loops_once)
    result = _ocr(tiny_idefics3, folder / "a.png", fmt="json")
    record = json.loads(result.stdout)
    assert [s.repetition_penalty for s in specs] == [1.0, 1.3]
    assert record["attempts"] == 2 and record["decoding"] == "greedy+repetition_penalty=1.3"
    assert record["finish_reason"] != "repetition"


@pytest.mark.model
def test_generation_past_the_page_timeout_fails_that_page(tiny_idefics3, folder, tmp_path, monkeypatch):
    import torch

    def slow(real, **kwargs):
        time.sleep(kwargs["max_time"])  # what transformers' max_time does: stop, whatever was generated
        return torch.cat([kwargs["input_ids"], torch.tensor([[7, 8]])], dim=1)

    _loaded_with(monkeypatch, slow)
    out = tmp_path / "out"
    result = _ocr(tiny_idefics3, folder / "a.png", folder / "sub" / "b.png", "-o", out, "--page-timeout", "0.2")
    assert result.exit_code == ExitCode.resource
    assert "went past --page-timeout (0.2 s) while generating" in result.stderr
    report = [json.loads(line) for line in (out / ocr_job.FAILURE_REPORT_NAME).read_text().splitlines()]
    assert [r["category"] for r in report] == ["timeout", "timeout"]


def _fake_pages(names_and_failures):
    def transcribe(inputs, instruction, run, *, pages=None, progress=None, reuse=None, on_plan=None, **kwargs):
        if on_plan is not None:
            on_plan([PageRef(Path(name), 0, 1, name.endswith(".pdf")) for name, _ in names_and_failures])
        for name, error in names_and_failures:
            if error is None:
                yield PageResult(Path(name), 1, f"text of {name}", 4, 2, 0.1, "stop")
            else:
                yield PageFailure(Path(name), 1, error)
    return transcribe


def test_fail_fast_stops_with_the_errors_own_code(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("a.png", "b.pdf", "c.png"):
        Path(name).write_bytes(name.encode())
    seen = []
    pages = _fake_pages([("a.png", None), ("b.pdf", EncryptedPdfError("b.pdf: PDF is encrypted")), ("c.png", None)])
    monkeypatch.setattr(ocr_job, "transcribe", lambda *a, **kw: (seen.append(item) or item for item in pages(*a, **kw)))
    result = runner.invoke(app, ["ocr", "a.png", "b.pdf", "c.png", "-o", "out", "--fail-fast"])
    assert result.exit_code == ExitCode.encrypted
    assert len(seen) == 2 and sorted(p.name for p in Path("out").iterdir()) == [
        ".vlmcli-lock", manifest.MANIFEST_NAME, "a.png.txt", ocr_job.FAILURE_REPORT_NAME]
    without = runner.invoke(app, ["ocr", "a.png", "b.pdf", "c.png", "-o", "out2"])
    assert without.exit_code == ExitCode.partial and len(seen) == 5


def test_sigterm_unwinds_like_ctrl_c(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("a.png", "b.png"):
        Path(name).write_bytes(name.encode())
    inner = _fake_pages([("a.png", None), ("b.png", None)])

    def terminated_after_one(*args, **kwargs):
        pages = inner(*args, **kwargs)
        yield next(pages)
        os.kill(os.getpid(), signal.SIGTERM)
        yield next(pages)

    monkeypatch.setattr(ocr_job, "transcribe", terminated_after_one)
    handler = signal.getsignal(signal.SIGTERM)
    result = runner.invoke(app, ["ocr", "a.png", "b.png", "-o", "out"])
    assert result.exit_code == ExitCode.terminated and "terminated" in result.stderr
    # a.png is done and written (all its pages are in); the manifest has it
    assert sorted(p.name for p in Path("out").iterdir()) == [".vlmcli-lock", manifest.MANIFEST_NAME, "a.png.txt"]
    assert len(manifest.done_keys(Path("out", manifest.MANIFEST_NAME))) == 1
    assert signal.getsignal(signal.SIGTERM) is handler  # vlmcli's handler is only there while ocr runs


@pytest.mark.parametrize("fault, code", [(KeyboardInterrupt, ExitCode.interrupted),
                                         (lambda: OSError(28, "No space left on device"), ExitCode.output)])
def test_fault_while_writing_an_output_leaves_no_file_and_keeps_the_manifest(monkeypatch, tmp_path, fault, code):
    """O1/O5: Ctrl-C or a full disk at the rename: no output, no temporary file; --resume then completes it."""
    monkeypatch.chdir(tmp_path)
    Path("a.png").write_bytes(b"a")
    monkeypatch.setattr(ocr_job, "transcribe", _fake_pages([("a.png", None)]))
    real_replace = os.replace

    def replace(source, target):
        if str(target).endswith(".txt"):
            raise fault()
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    result = runner.invoke(app, ["ocr", "a.png", "-o", "out"])
    assert result.exit_code == code
    assert sorted(p.name for p in Path("out").iterdir()) == [".vlmcli-lock", manifest.MANIFEST_NAME]
    monkeypatch.setattr(os, "replace", real_replace)
    monkeypatch.setattr(ocr_job, "transcribe", lambda *a, reuse=None, on_plan, **kw: on_plan([_ref("a.png")]) or iter(
        [reuse(_ref("a.png"))]))
    assert runner.invoke(app, ["ocr", "a.png", "-o", "out", "--resume"]).exit_code == 0
    assert Path("out/a.png.txt").read_text() == "text of a.png\n"


def _ref(name: str):
    from vlmcli.inputs.documents import PageRef

    return PageRef(Path(name), 0, 1, False)


def test_stale_temporary_files_of_a_killed_run_are_swept(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    stale = out / "sub" / f".b.png.txt{TEMP_MARK}x1y2.tmp"
    stale.write_text("half")
    (out / "notes.tmp").write_text("not ours")
    request = ocr_job.OcrRequest(inputs=(), instruction="Read.", run=RunSpec(), out_dir=out,
                               output_format=OutputFormat.text, force=True)  # notes.tmp is not vlmcli's
    ocr_job.run_ocr(request, write=lambda text: None)
    assert not stale.exists() and (out / "notes.tmp").exists()


def test_resume_needs_an_output_folder():
    result = runner.invoke(app, ["ocr", "a.png", "--resume"])
    assert result.exit_code == ExitCode.usage and "--resume needs -o/--output" in result.stderr
