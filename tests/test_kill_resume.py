"""O2/O5 with real signals: `vlmcli ocr` in a subprocess, Ctrl-C'd then SIGKILLed mid-run, resumed to the end.

The final files must be byte for byte those of a run that was never interrupted,
with every page read exactly once across the runs (by the manifest, not by
whether files exist), and no temporary file left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import draw_page
from typer.testing import CliRunner

from vlmcli.cli import app
from vlmcli.errors import ExitCode
from vlmcli.files import TEMP_MARK
from vlmcli.jobs.manifest import MANIFEST_NAME, done_keys

pytestmark = pytest.mark.model
PAGES = 12
# The CLI with each page held back 0.15 s: the tiny model reads a page in milliseconds, and a signal
# meant for "after 2 pages" must not arrive after the last one. Ctrl-C is re-armed too: when the test
# suite itself runs as a background job (`cmd &` in a script), its children inherit SIGINT ignored.
SLOW_CLI = ("import signal, sys, time\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from vlmcli.pipeline import page\n"
            "run_page = page._run_page\n"
            "page._run_page = lambda *args, **kwargs: (time.sleep(0.15), run_page(*args, **kwargs))[1]\n"
            "from vlmcli.cli import main\n"
            "main()\n")


def _args(checkpoint: Path, inbox: Path, out: Path) -> list[str]:
    return ["ocr", str(inbox), "-o", str(out), "--model", str(checkpoint), "--offline", "--dtype", "float32",
            "--max-new-tokens", "24", "-f", "markdown"]


def _done_pages(out: Path) -> int:
    try:
        return len(done_keys(out / MANIFEST_NAME))
    except FileNotFoundError:
        return 0


def _start_and_signal(args: list[str], out: Path, after_pages: int, signum: int) -> tuple[int, int, str]:
    """Run the CLI; send `signum` once the manifest holds `after_pages` more pages. (returncode, pages done, stderr)"""
    before = _done_pages(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", SLOW_CLI, *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while _done_pages(out) < before + after_pages and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=60)
    return child.returncode, _done_pages(out), stderr


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != MANIFEST_NAME}


def test_sigint_then_sigkill_then_resume_is_byte_identical(tiny_idefics3, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "scans").mkdir(parents=True)
    pages = [draw_page((300, 400), f"page {n}") for n in range(1, 6)]
    pages[0].save(inbox / "report.pdf", save_all=True, append_images=pages[1:], resolution=72)
    for n in range(PAGES - 5):
        draw_page((200, 150), f"receipt {n} total {n * 7}.50").save(inbox / "scans" / f"r{n}.png")

    clean = CliRunner().invoke(app, _args(tiny_idefics3, inbox, tmp_path / "clean"))
    assert clean.exit_code == 0, clean.output

    out = tmp_path / "out"
    code, done_after_int, stderr = _start_and_signal(_args(tiny_idefics3, inbox, out), out, 2, signal.SIGINT)
    assert code == ExitCode.interrupted, stderr
    assert "interrupted" in stderr and 2 <= done_after_int < PAGES
    assert not list(out.rglob(f".*{TEMP_MARK}*.tmp"))  # Ctrl-C cleans up after itself

    resume = [*_args(tiny_idefics3, inbox, out), "--resume"]
    code, done_after_kill, stderr = _start_and_signal(resume, out, 3, signal.SIGKILL)
    assert code == -signal.SIGKILL, stderr
    assert done_after_int + 3 <= done_after_kill < PAGES, "the run must die mid-way for this test to mean anything"

    final = CliRunner().invoke(app, resume)
    assert final.exit_code == 0, final.output
    assert f"{PAGES} pages ok ({done_after_kill} from the manifest), 0 failed" in final.stderr
    assert _files(out) == _files(tmp_path / "clean")
    keys = done_keys(out / MANIFEST_NAME)
    assert len(keys) == len(set(keys)) == PAGES  # each page recorded once over the three runs
    assert not list(out.rglob(f".*{TEMP_MARK}*.tmp"))  # what SIGKILL left was swept
