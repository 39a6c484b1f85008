"""Output rendering and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlmcli.cli import app
from vlmcli.errors import ExitCode, InputError
from vlmcli.files import atomic_write
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs import ocr as ocr_job
from vlmcli.jobs.manifest import MANIFEST_NAME, done_keys
from vlmcli.jobs.outputs import PlainRendering, Sink, render
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.specs import OutputFormat


def _page(source="a.pdf", number=1, text="héllo ✓ 𝔘"):
    return PageResult(Path(source), number, text, 64, 3, 0.5, "stop")


def test_json_round_trips_unicode():
    line = render(_page(text="ünïcødé \u202e rtl \x00 nul"), OutputFormat.json, True)
    assert json.loads(line)["text"] == "ünïcødé \u202e rtl \x00 nul" and line.count("\n") == 1


def test_text_pages_are_separated_by_form_feeds():
    chunks = [render(_page(number=n, text=f"p{n}"), OutputFormat.text, n == 1) for n in (1, 2)]
    assert "".join(chunks) == "p1\n\f\np2\n"


def test_failed_page_is_a_json_record_and_absent_from_text():
    failure = PageFailure(Path("a.pdf"), 2, InputError("a.pdf: broken"))
    assert json.loads(render(failure, OutputFormat.json, True)) == {
        "source": "a.pdf", "page_number": 2, "error": "a.pdf: broken", "category": "input", "exit_code": 3,
        "attempts": 1}
    assert render(failure, OutputFormat.text, True) == ""


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        atomic_write(target, "text")
    assert list(tmp_path.iterdir()) == []


def test_sink_names_files_without_collisions(tmp_path):
    written = []
    sink = Sink(PlainRendering(OutputFormat.text), tmp_path, [Path("x/a.pdf"), Path("y/a.pdf")], written.append)
    sink.plan([PageRef(Path(source), 0, 1, True) for source in ("x/a.pdf", "y/a.pdf")])
    for source in ("x/a.pdf", "y/a.pdf"):
        sink.add(_page(source))
    assert [p.name for p in sink.written] == ["a.pdf.txt", "a.pdf-2.txt"] and written == []


def test_sink_writes_an_input_once_all_its_planned_pages_are_in_whatever_their_order(tmp_path):
    """The Ray driver and engines hand pages over as they come back: a file is complete, pages in order."""
    sink = Sink(PlainRendering(OutputFormat.text), tmp_path, [Path("a.pdf"), Path("b.pdf")], lambda text: None)
    sink.plan([PageRef(Path("a.pdf"), index, 2, True) for index in (0, 1)] + [PageRef(Path("b.pdf"), 0, 1, True)])
    sink.add(PageResult(Path("a.pdf"), 2, "second", 1, 1, 0.0, "stop"))
    sink.add(_page("b.pdf"))
    assert [p.name for p in sink.written] == ["b.pdf.txt"]  # a.pdf still lacks its page 1
    sink.add(PageResult(Path("a.pdf"), 1, "first", 1, 1, 0.0, "stop"))
    assert (tmp_path / "a.pdf.txt").read_text() == "first\n\f\nsecond\n"


def test_interrupt_exits_130_and_keeps_finished_files(monkeypatch, tmp_path):
    def interrupted(*args, on_plan, **kwargs):
        on_plan([PageRef(Path("first.png"), 0, 1, False), PageRef(Path("second.pdf"), 0, 2, True),
                 PageRef(Path("second.pdf"), 1, 2, True)])
        yield _page("first.png")
        yield _page("second.pdf", 1)
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    for name in ("first.png", "second.pdf"):
        Path(name).write_bytes(name.encode())
    monkeypatch.setattr(ocr_job, "transcribe", interrupted)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["ocr", "first.png", "second.pdf", "-o", str(out)])
    assert result.exit_code == ExitCode.interrupted
    assert sorted(p.name for p in out.iterdir()) == [".vlmcli-lock", MANIFEST_NAME, "first.png.txt"]  # second.pdf was not finished
    assert len(done_keys(out / MANIFEST_NAME)) == 2  # ...but its page 1 is kept for --resume
