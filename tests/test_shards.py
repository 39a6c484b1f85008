"""Job arrays: the shard partition (pure), the CLI's --shard and environment fallbacks, `vlmcli status`, and
4 shard processes into one folder, one SIGKILLed, finished by shards of another N: the files of one
unsharded run, byte for byte, every page read once."""

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
from vlmcli.errors import UsageError
from vlmcli.files import TEMP_MARK
from vlmcli.jobs import manifest, shards
from vlmcli.jobs import ocr as ocr_job
from vlmcli.jobs.outputs import relative_name
from vlmcli.jobs.status import job_status
from vlmcli.pipeline import page

runner = CliRunner()
KEYS = [f"folder{n % 7}/scan-{n:04d}.pdf" for n in range(300)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_shards_cover_every_document_once(count):
    owners = {key: [k for k in range(1, count + 1) if shards.Shard(k, count).owns(key)] for key in KEYS}
    assert all(len(found) == 1 for found in owners.values())
    sizes = [sum(found == [k] for found in owners.values()) for k in range(1, count + 1)]
    assert min(sizes) > len(KEYS) / count / 2  # no shard starves (SHA-256 spreads the keys)


def test_shard_of_a_key_is_fixed():
    """The partition is SHA-256 of the key: the same in every process and every release (shards of one job
    may run different builds), and a new document changes no other document's shard."""
    assert [shards.shard_of(key, 16) for key in ("a.pdf", "scans/b.png", "é.tiff")] == [3, 14, 13]  # int(sha256(key)[:16 hex], 16) % 16 + 1
    before = {key: shards.shard_of(key, 5) for key in KEYS}
    assert {key: shards.shard_of(key, 5) for key in [*KEYS, "new.pdf"] if key != "new.pdf"} == before


@pytest.mark.parametrize("text, shard", [("1/4", shards.Shard(1, 4)), (" 4 / 4 ", shards.Shard(4, 4))])
def test_parse_shard(text, shard):
    assert shards.parse_shard(text) == shard and shard.label == f"{shard.index}-of-4"


@pytest.mark.parametrize("text", ["0/4", "5/4", "2", "a/b", "1/0", "-1/3"])
def test_bad_shard_is_a_usage_error(text):
    with pytest.raises(UsageError):
        shards.parse_shard(text)


@pytest.mark.parametrize("environ, count, expected", [
    ({}, None, None),
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "8"}, None, (1, 8)),
    ({"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0",
      "SLURM_ARRAY_TASK_STEP": "4"}, None, (4, 4)),  # --array=0-12:4
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "5", "SLURM_ARRAY_TASK_MIN": "1"}, None, (5, 5)),
    ({"JOB_COMPLETION_INDEX": "2"}, 3, (3, 3)),
])
def test_shard_from_job_array_environment(environ, count, expected):
    found = shards.shard_from_environment(environ, count)
    assert (found and (found[0].index, found[0].count)) == (expected or None)


@pytest.mark.parametrize("environ, count", [({"JOB_COMPLETION_INDEX": "0"}, None), ({}, 4),
                                             ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}, None),
                                             ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}, 3)])
def test_incomplete_job_array_environment_is_a_usage_error(environ, count):
    with pytest.raises(UsageError):
        shards.shard_from_environment(environ, count)


def _captured_request(monkeypatch) -> list:
    seen = []
    monkeypatch.setattr(ocr_job, "run_ocr", lambda request, **kw: seen.append(request) or ocr_job.OcrSummary())
    return seen


def test_cli_passes_the_shard_from_the_option_or_the_environment(monkeypatch, page_png):
    seen = _captured_request(monkeypatch)
    assert runner.invoke(app, ["ocr", str(page_png), "--shard", "2/3"]).exit_code == 0
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "4")
    result = runner.invoke(app, ["ocr", str(page_png), "--shard-count", "5"])
    assert result.exit_code == 0 and "shard 5/5 (from JOB_COMPLETION_INDEX)" in result.stderr
    assert [request.shard for request in seen] == [shards.Shard(2, 3), shards.Shard(5, 5)]
    missing_count = runner.invoke(app, ["ocr", str(page_png)])
    assert missing_count.exit_code == 2 and "--shard-count" in missing_count.stderr


@pytest.fixture
def mixed_folders(tmp_path) -> list[Path]:
    """Two folder inputs (both with an a.png: their outputs are a.png.md and a.png-2.md), a 3-page PDF,
    images in sub-folders, a corrupt file: 9 documents, 10 pages that can be read."""
    first, second = tmp_path / "in1", tmp_path / "in2"
    for folder in (first / "scans", second):
        folder.mkdir(parents=True)
    pages = [draw_page((300, 400), f"page {n}") for n in (1, 2, 3)]
    pages[0].save(first / "report.pdf", save_all=True, append_images=pages[1:], resolution=72)
    draw_page((200, 120), "first a").save(first / "a.png")
    draw_page((200, 120), "second a").save(second / "a.png")
    for n in range(5):
        draw_page((160, 200), f"receipt {n}").save(first / "scans" / f"r{n}.png")
    (second / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return [first, second]


SLOW_CLI = ("import signal, sys, time\n"
            "from vlmcli.pipeline import page\n"
            "run_page = page._run_page\n"
            "page._run_page = lambda *args, **kwargs: (time.sleep(0.3), run_page(*args, **kwargs))[1]\n"
            "from vlmcli.cli import main\n"
            "main()\n")


def _args(checkpoint: Path, inputs: list[Path], out: Path, *extra: str) -> list[str]:
    return ["ocr", *map(str, inputs), "-o", str(out), "--model", str(checkpoint), "--offline", "--dtype", "float32",
            "--max-new-tokens", "8", "-f", "markdown", *extra]


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and not p.name.startswith("vlmcli-failures")}


@pytest.mark.model
def test_four_shard_processes_one_killed_then_finished_by_three_equal_one_run(tiny_idefics3, mixed_folders,
                                                                            tmp_path, monkeypatch):
    whole = runner.invoke(app, _args(tiny_idefics3, mixed_folders, tmp_path / "whole"))
    assert whole.exit_code == 10, whole.output  # the corrupt file
    documents = ocr_job._documents(tuple(mixed_folders), None, None)
    victim = shards.shard_of(relative_name(mixed_folders[0] / "report.pdf", mixed_folders), 4)
    corrupt = shards.shard_of(relative_name(mixed_folders[1] / "broken.png", mixed_folders), 4)

    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    children = {k: subprocess.Popen([sys.executable, "-c", SLOW_CLI, *_args(tiny_idefics3, mixed_folders, out,
                                                                            "--shard", f"{k}/4")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
                for k in range(1, 5)}
    victim_manifest = out / manifest.manifest_name(f"{victim}-of-4")
    deadline = time.monotonic() + 120
    while (not victim_manifest.exists() or not manifest.done_keys(victim_manifest)) and time.monotonic() < deadline:
        time.sleep(0.01)
    children[victim].send_signal(signal.SIGKILL)
    for k, child in children.items():
        _, stderr = child.communicate(timeout=120)
        # Killed; else 10 for the shard that owns the corrupt file (a failed input), 0 for the others.
        expected = -signal.SIGKILL if k == victim else 10 if k == corrupt else 0
        assert child.returncode == expected, (k, stderr)
    done_by_four = sum(len(manifest.done_keys(path)) for path in manifest.manifest_paths(out))
    assert 1 <= done_by_four < 10, "the killed shard must die mid-way for this test to mean anything"
    assert job_status(out).total.pending == 10 - done_by_four

    read = []
    real = page._run_page
    monkeypatch.setattr(page, "_run_page", lambda loaded, ref, *a: read.append(ref) or real(loaded, ref, *a))
    broken_of_3 = shards.shard_of(relative_name(mixed_folders[1] / "broken.png", mixed_folders), 3)
    for k in (1, 2, 3):  # the rest, by shards of another N: pages done by the 4 are not read again
        result = runner.invoke(app, _args(tiny_idefics3, mixed_folders, out, "--shard", f"{k}/3", "--resume"))
        assert result.exit_code == (10 if k == broken_of_3 else 0), result.output
    assert len(read) == 10 - done_by_four
    rerun = runner.invoke(app, _args(tiny_idefics3, mixed_folders, out, "--shard", f"{victim}/4", "--resume"))
    assert rerun.exit_code == (10 if victim == corrupt else 0), rerun.output
    assert len(read) == 10 - done_by_four  # the killed shard, rerun: nothing left

    assert _files(out) == _files(tmp_path / "whole") and len(documents) == 9
    assert {"a.png.md", "a.png-2.md"} <= set(_files(out))
    status = job_status(out)
    assert (status.total.planned, status.total.done, status.total.pending, status.total.failed_inputs) == (10, 10, 0, 1)
    assert not list(out.rglob(f".*{TEMP_MARK}*.tmp"))


def test_status_counts_each_page_once_across_manifests(tmp_path):
    """A page done anywhere is done (even where another shard failed it); planned and not done is pending."""
    def shard_manifest(label, plan, done=(), failed=()):
        with manifest.Manifest(tmp_path / manifest.manifest_name(label), resume=False) as written:
            written.record_plan(plan, ["gone.pdf"] if label == "2-of-2" else [], label)
            for key in done:
                written.record_done(key, {"text": key})
            for key in failed:
                written.record_failed(key, {"category": "timeout"})

    shard_manifest("1-of-2", ["k1", "k2"], done=["k1"], failed=["k2"])
    shard_manifest("2-of-2", ["k3", "k4"])  # killed before its first page
    shard_manifest("1-of-3", ["k2"], done=["k2"])  # a rerun with another N read k2 again
    (tmp_path / manifest.manifest_name("3-of-3")).write_text('{"v": 1, "key": "k4", "rec')  # torn
    result = runner.invoke(app, ["status", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["run", "planned", "done", "failed", "pending", "bad", "inputs"]
    assert rows[1:] == [["1/2", "2", "2", "0", "0", "0"], ["1/3", "1", "1", "0", "0", "0"],
                        ["2/2", "2", "0", "0", "2", "1"], [".vlmcli-manifest.3-of-3.jsonl", "0", "0", "0", "0", "0"],
                        ["all", "(each", "page", "once)", "4", "2", "0", "2", "1"]]
    assert "1 torn manifest line(s)" in result.stderr
    assert '"total": {"planned": 4, "done": 2, "failed": 0, "pending": 2, "failed_inputs": 1}' in runner.invoke(
        app, ["status", str(tmp_path), "-f", "json"]).stdout
