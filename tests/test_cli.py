"""The CLI layer: what it passes to the services, where output goes, and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlmcli import model
from vlmcli.cli import app
from vlmcli.errors import ExitCode, InputError
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs import ocr as ocr_job
from vlmcli.jobs.manifest import MANIFEST_NAME
from vlmcli.jobs.ocr import FAILURE_REPORT_NAME
from vlmcli.pipeline import ask as asking
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.specs import DEFAULT_MODEL, DecodeDType, KVCache, Quant

runner = CliRunner()


class FakeAnswer:
    text, image_tokens, new_tokens, seconds, finish_reason = "42", 64, 2, 0.1, "stop"


def test_ask_passes_specs(monkeypatch, page_png):
    calls = []

    def fake_ask(files, question, run, **kwargs):
        calls.append((files, question, run, kwargs))
        return FakeAnswer()

    monkeypatch.setattr(asking, "ask", fake_ask)
    result = runner.invoke(app, ["ask", str(page_png), str(page_png), "What is the total?", "--quantize", "4bit",
                                 "--no-split", "--longest-edge", "1024", "--page", "2", "--offline"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "42\n"
    files, question, run, kwargs = calls[0]
    assert files == [page_png, page_png] and question == "What is the total?"
    assert run.model.quantize is Quant.nf4 and run.model.offline and run.model.model_id == DEFAULT_MODEL
    assert run.split.split is False and run.split.longest_edge_px == 1024
    assert run.generation.max_new_tokens == 512
    assert kwargs["page_number"] == 2 and kwargs["on_text"] is None  # not a terminal: no streaming


def test_model_comes_from_the_environment(monkeypatch, page_png):
    seen = []
    monkeypatch.setattr(asking, "ask", lambda files, q, run, **kw: seen.append(run.model.model_id) or FakeAnswer())
    monkeypatch.setenv("VLMCLI_MODEL", "/models/mine")
    assert runner.invoke(app, ["ask", str(page_png), "q"]).exit_code == 0
    assert seen == ["/models/mine"]


def _result(source, page, text="text"):
    return PageResult(Path(source), page, text, 64, 3, 0.5, "stop")


def test_ocr_json_is_one_record_per_page(monkeypatch, tmp_path):
    monkeypatch.setattr(ocr_job, "transcribe", lambda inputs, instruction, run, **kw: iter(
        [_result("a.pdf", 1, "first"), _result("a.pdf", 2, "second")]))
    result = runner.invoke(app, ["ocr", "a.pdf", "--format", "json", "--first-pass", "model"])  # no words
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["page_number"] for r in records] == [1, 2]
    assert set(records[0]) >= {"source", "page_number", "text", "image_tokens", "new_tokens", "seconds",
                               "finish_reason"}


def test_ocr_passes_pages_prompt_and_handwriting(monkeypatch):
    calls = []
    monkeypatch.setattr(ocr_job, "transcribe", lambda inputs, instruction, run, **kw: calls.append(
        (inputs, instruction, kw)) or iter([]))
    runner.invoke(app, ["ocr", "a.pdf", "--pages", "1-3,7", "--handwriting"])
    assert calls[0][2]["pages"] == "1-3,7" and "handwritten" in calls[0][1]
    runner.invoke(app, ["ocr", "a.pdf", "--prompt", "Only the title."])
    assert calls[1][1] == "Only the title."



def test_ocr_passes_the_decode_dtype(monkeypatch):
    runs = []
    monkeypatch.setattr(ocr_job, "transcribe", lambda inputs, instruction, run, **kw: runs.append(run) or iter([]))
    runner.invoke(app, ["ocr", "a.pdf", "--decode-dtype", "float16"])
    runner.invoke(app, ["ocr", "a.pdf"])
    assert [run.model.decode_dtype for run in runs] == [DecodeDType.float16, DecodeDType.same]

def test_ocr_partial_success_writes_the_good_files(monkeypatch, tmp_path):
    """O3: one bad input among good ones: the others are written, the failure is reported, exit 10."""
    monkeypatch.chdir(tmp_path)
    for name in ("a.pdf", "c.png"):
        Path(name).write_bytes(name.encode())
    bad = PageFailure(Path("bad.png"), None, InputError("bad.png: not a supported image"))
    monkeypatch.setattr(ocr_job, "transcribe", lambda *a, on_plan, **kw: on_plan(
        [PageRef(Path("a.pdf"), 0, 1, True), PageRef(Path("c.png"), 0, 1, False)]) or iter(
        [_result("a.pdf", 1), bad, _result("c.png", 1)]))
    out = tmp_path / "out"
    result = runner.invoke(app, ["ocr", "a.pdf", "bad.png", "c.png", "-o", str(out), "-f", "markdown"])
    assert result.exit_code == ExitCode.partial
    assert sorted(p.name for p in out.iterdir()) == [".vlmcli-lock", MANIFEST_NAME, "a.pdf.md", "c.png.md", FAILURE_REPORT_NAME]
    assert "vlmcli: error: bad.png: not a supported image; skipped" in result.stderr
    assert result.stderr.splitlines()[-1] == f"vlmcli: 2 pages ok, 1 failed; failures listed in {out / FAILURE_REPORT_NAME}"
    report = [json.loads(line) for line in (out / FAILURE_REPORT_NAME).read_text().splitlines()]
    assert report == [{"input": "bad.png", "page_number": None, "category": "input",
                       "message": "bad.png: not a supported image", "attempts": 1, "exit_code": 3}]
    assert result.stdout == ""


def test_ocr_single_bad_input_exits_with_its_code(tmp_path):
    missing = tmp_path / "missing.png"
    result = runner.invoke(app, ["ocr", str(missing)])
    assert result.exit_code == ExitCode.input
    assert result.stderr.splitlines() == [f"vlmcli: error: {missing}: no such file; skipped",
                                          "vlmcli: 0 pages ok, 1 failed"]


def test_ocr_output_dir_must_be_writable(tmp_path, page_png):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["ocr", str(page_png), "-o", str(blocker / "sub")])
    assert result.exit_code in (ExitCode.output, ExitCode.usage)


def test_bad_page_range_is_a_usage_error(pdf_3_pages):
    result = runner.invoke(app, ["ocr", str(pdf_3_pages), "--pages", "5-9"])
    assert result.exit_code == ExitCode.usage
    assert "page 9 is past the end (the document has 3 pages)" in result.stderr


def test_ask_on_a_missing_file(tmp_path):
    result = runner.invoke(app, ["ask", str(tmp_path / "x.png"), "what?"])
    assert result.exit_code == ExitCode.input
    assert result.stderr.count("\n") == 1 and "x.png: no such file" in result.stderr


def test_import_and_help_do_not_import_torch():
    code = ("import sys, vlmcli.cli; heavy = {'torch', 'transformers', 'peft', 'bitsandbytes'} & set(sys.modules);"
            " assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    code = ("import sys; sys.argv = ['vlmcli', '--help'];"
            "import atexit; atexit.register(lambda: print('TORCH' if 'torch' in sys.modules else 'LIGHT'));"
            "from vlmcli.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("LIGHT")


def test_bad_input_is_reported_before_torch_is_imported(tmp_path):
    code = ("import sys; from vlmcli.cli import main; sys.argv = ['vlmcli', 'ocr', sys.argv[1]];\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print(e.code, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nothing.png")], capture_output=True, text=True)
    assert result.stdout.split() == [str(int(ExitCode.input)), "False"]


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "vlmcli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("vlmcli ")


def _bad_inputs(tmp_path, pdf_3_pages):
    truncated = tmp_path / "cut.png"
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), "white").save(buffer, "PNG")
    truncated.write_bytes(buffer.getvalue()[:200])
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    return {
        "missing": ([str(tmp_path / "none.png")], ExitCode.input, "none.png: no such file"),
        "not an image": ([str(tmp_path / "text.png")], ExitCode.input, "text.png: not a supported image"),
        "truncated": ([str(truncated)], ExitCode.input, "cut.png: corrupt or truncated image"),
        "corrupt pdf": ([str(tmp_path / "broken.pdf")], ExitCode.input, "broken.pdf: not a readable PDF"),
        "page out of range": ([str(pdf_3_pages), "--pages", "4"], ExitCode.usage, "page 4 is past the end"),
    }


@pytest.mark.parametrize("case", ["missing", "not an image", "truncated", "corrupt pdf", "page out of range"])
def test_bad_input_matrix(tmp_path, pdf_3_pages, case):
    args, code, message = _bad_inputs(tmp_path, pdf_3_pages)[case]
    result = runner.invoke(app, ["ocr", *args])
    assert result.exit_code == code
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith("vlmcli: error: ") and message in first_line
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_encrypted_pdf_exit_code_and_password(tmp_path, pdf_3_pages, monkeypatch):
    pikepdf = pytest.importorskip("pikepdf")
    locked = tmp_path / "locked.pdf"
    with pikepdf.open(pdf_3_pages) as document:
        document.save(locked, encryption=pikepdf.Encryption(user="pw", owner="owner", R=6))
    result = runner.invoke(app, ["ocr", str(locked)])
    assert result.exit_code == ExitCode.encrypted and "--password" in result.stderr
    seen = []
    monkeypatch.setattr(model, "load", lambda spec, split, **kw: seen.append(spec) or (_ for _ in ()).throw(SystemExit(0)))
    runner.invoke(app, ["ocr", str(locked), "--password", "pw"])
    assert seen, "with the right password the PDF opens and the model is loaded next"


def test_no_pdf_reader_at_all_exit_code(pdf_3_pages, monkeypatch, tmp_path):
    """Without poppler, PDFium reads PDFs (tests/test_pdf_renderers.py); without either, exit 6 and how to fix it."""
    from vlmcli.inputs import pdfium

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pdfium, "installed", lambda: False)
    result = runner.invoke(app, ["ocr", str(pdf_3_pages)])
    assert result.exit_code == ExitCode.dependency and "poppler-utils" in result.stderr


def test_ocr_batch_size_reaches_the_run_spec(monkeypatch):
    runs = []
    monkeypatch.setattr(ocr_job, "transcribe", lambda inputs, instruction, run, **kw: runs.append(run) or iter([]))
    runner.invoke(app, ["ocr", "a.pdf", "--batch-size", "8"])
    runner.invoke(app, ["ocr", "a.pdf"])
    assert [run.batch_size for run in runs] == [8, 1]
    assert runner.invoke(app, ["ocr", "a.pdf", "--batch-size", "0"]).exit_code == 2


def test_kv_cache_reaches_the_generation_spec(monkeypatch):
    runs = []
    monkeypatch.setattr(ocr_job, "transcribe", lambda inputs, instruction, run, **kw: runs.append(run) or iter([]))
    monkeypatch.setattr(asking, "ask", lambda files, question, run, **kw: runs.append(run) or FakeAnswer())
    runner.invoke(app, ["ocr", "a.pdf", "--kv-cache", "dynamic"])
    runner.invoke(app, ["ocr", "a.pdf"])
    runner.invoke(app, ["ask", "a.png", "Total?", "--kv-cache", "static"])
    assert [run.generation.kv_cache for run in runs] == [KVCache.dynamic, KVCache.auto, KVCache.static]
