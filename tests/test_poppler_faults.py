"""Fault injection: fake `pdftoppm` / `pdfinfo` on PATH that hang, crash after k pages, or write garbage (P4, P5).

Each fake is a shell script in front of the real tool, as OCRmyPDF's test plugins
stand in for a crashing or hanging engine. The page it breaks must fail with a
category; the pages around it must be read; no child may outlive its timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlmcli.cli import app
from vlmcli.errors import ExitCode, PageTimeoutError, RasterizerError
from vlmcli.inputs import documents, pages
from vlmcli.jobs.ocr import FAILURE_REPORT_NAME
from vlmcli.pipeline.results import PageResult
from vlmcli.specs import PdfSpec

REAL = {tool: shutil.which(tool) for tool in ("pdftoppm", "pdfinfo")}
pytestmark = pytest.mark.skipif(None in REAL.values(), reason="needs poppler-utils")

# Shell prologue: the 1-based page asked for (-f N), and a counter of calls in $CALLS_FILE.
_PROLOGUE = """#!/bin/sh
page=0; prev=""
for arg in "$@"; do [ "$prev" = "-f" ] && page=$arg; prev=$arg; done
calls=$(( $(cat "$CALLS_FILE" 2>/dev/null || echo 0) + 1 )); echo $calls > "$CALLS_FILE"
"""
FAKES = {
    # The sleep is a grandchild: killing only the script would leave it holding the pipes.
    "hang on page 2": ("pdftoppm", 'if [ "$page" = 2 ]; then sleep 1000 & echo $! > "$PID_FILE"; wait; fi\n'),
    "crash after 1 page": ("pdftoppm", 'if [ $calls -gt 1 ]; then kill -SEGV $$; fi\n'),
    "garbage": ("pdftoppm", 'if [ "$page" = 2 ]; then echo "P6 garbage \\x00\\x01"; head -c 3000 /dev/urandom; exit 0; fi\n'),
    "no page": ("pdftoppm", 'if [ "$page" = 2 ]; then exit 0; fi\n'),
    "two pages": ("pdftoppm", 'if [ "$page" = 2 ]; then exec "$REAL_TOOL" -f 2 -l 3 "$(eval echo \\${$#})"; fi\n'),
    "exit 1 after output": ("pdftoppm", 'if [ "$page" = 2 ]; then "$REAL_TOOL" "$@"; exit 1; fi\n'),
    "size garbage": ("pdfinfo", 'case "$*" in *"-f 2"*) echo "Page    2 size: lots x of pts"; exit 0;; esac\n'),
    "pdfinfo hangs": ("pdfinfo", 'sleep 1000 & echo $! > "$PID_FILE"; wait\n'),
}


@pytest.fixture
def fake_poppler(tmp_path, monkeypatch):
    """Install the fake named by the test on PATH (the other tool stays real); return its bin folder."""
    def install(name: str) -> Path:
        tool, body = FAKES[name]
        folder = tmp_path / "fake-bin"
        folder.mkdir(exist_ok=True)
        script = folder / tool
        script.write_text(_PROLOGUE + body + f'exec "{REAL[tool]}" "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("CALLS_FILE", str(tmp_path / "calls"))
        monkeypatch.setenv("PID_FILE", str(tmp_path / "pid"))
        monkeypatch.setenv("REAL_TOOL", REAL[tool])
        return folder
    return install


def _read_all(path: Path, spec: PdfSpec) -> list:
    """Each page of a PDF rendered, or the error it raised (what `transcribe` does, without a model)."""
    results = []
    for ref in documents.page_refs(path, None, spec):
        try:
            results.append(pages.load_page(ref, 64, True, spec).size)
        except Exception as exc:  # noqa: BLE001 - the test inspects which type came out
            results.append(exc)
    return results


def _gone_or_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.parametrize("name, message", [
    ("crash after 1 page", "pdftoppm crashed (SIGSEGV)"),
    ("garbage", "pdftoppm output for page 2 is not an image"),
    ("no page", "pdftoppm returned no image for page 2"),
    ("two pages", "one page is"),
    ("exit 1 after output", "pdftoppm failed (exit status 1)"),
    ("size garbage", "pdfinfo gave no usable size for page 2"),
])
def test_a_broken_rasterizer_fails_its_pages_only(pdf_3_pages, fake_poppler, name, message):
    fake_poppler(name)
    results = _read_all(pdf_3_pages, PdfSpec())
    assert isinstance(results[0], tuple)  # page 1 is always read
    failed = [r for r in results if isinstance(r, Exception)]
    assert failed and all(isinstance(r, RasterizerError) and r.category == "backend_failure" for r in failed)
    assert message in failed[0].message
    if name != "crash after 1 page":
        assert isinstance(results[2], tuple)  # page 3 after the broken page 2


def test_a_hanging_rasterizer_is_killed_at_the_timeout(pdf_3_pages, fake_poppler, tmp_path):
    fake_poppler("hang on page 2")
    started = time.monotonic()
    results = _read_all(pdf_3_pages, PdfSpec(timeout_s=1))
    assert time.monotonic() - started < 10
    assert isinstance(results[0], tuple) and isinstance(results[2], tuple)
    assert isinstance(results[1], PageTimeoutError) and results[1].category == "timeout"
    assert "pdftoppm took over 1 s rendering page 2; stopped it" in results[1].message
    pid = int((tmp_path / "pid").read_text())
    assert _gone_or_zombie(pid)  # the script's `sleep` child: the whole process group was killed


def test_a_hanging_pdfinfo_is_killed_and_the_batch_goes_on(pdf_3_pages, page_png, fake_poppler, tmp_path,
                                                           monkeypatch):
    fake_poppler("pdfinfo hangs")
    from vlmcli import model
    from vlmcli.pipeline import transcribe

    monkeypatch.setattr(model, "load", lambda spec, split, **kwargs: object())
    monkeypatch.setattr(transcribe, "transcribe_prepared", lambda loaded, ref, prepared, run: PageResult(
        ref.source, ref.page_number, "text", 1, 1, 0.0, "stop"))
    monkeypatch.setattr(transcribe, "prepare_page", lambda *args: None)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["ocr", str(pdf_3_pages), str(page_png), "-o", str(out), "--page-timeout", "1"])
    assert result.exit_code == ExitCode.partial
    report = [json.loads(line) for line in (out / FAILURE_REPORT_NAME).read_text().splitlines()]
    assert [(r["input"], r["category"]) for r in report] == [(str(pdf_3_pages), "timeout")]
    assert (out / "page.png.txt").read_text() == "text\n"
    assert _gone_or_zombie(int((tmp_path / "pid").read_text()))


@pytest.mark.model
def test_batch_over_a_crashing_rasterizer_reports_and_goes_on(tiny_idefics3, pdf_3_pages, fake_poppler, tmp_path):
    """P5 end to end: pages 2-3 crash the rasterizer; page 1 is written, the report lists 2 and 3, exit 10."""
    fake_poppler("crash after 1 page")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["ocr", str(pdf_3_pages), "-o", str(out), "--model", str(tiny_idefics3),
                                      "--offline", "--dtype", "float32", "--max-new-tokens", "4", "-f", "json",
                                      "--first-pass", "model"])  # the fake counts pdftoppm calls: the model's only
    assert result.exit_code == ExitCode.partial, result.output
    assert [json.loads(line).get("page_number") for line in (out / "doc.pdf.jsonl").read_text().splitlines()] == [
        1, 2, 3]  # JSON keeps the failed pages as records
    report = [json.loads(line) for line in (out / FAILURE_REPORT_NAME).read_text().splitlines()]
    assert [(r["page_number"], r["category"], r["attempts"]) for r in report] == [
        (2, "backend_failure", 1), (3, "backend_failure", 1)]
    assert result.stderr.splitlines()[-1].startswith("vlmcli: 1 pages ok, 2 failed")

