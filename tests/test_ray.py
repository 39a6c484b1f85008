"""`vlmcli ocr --ray` on a local Ray instance: 2 Ray Data actors on the tiny model, one SIGKILLed when the first
page comes back, write what a local run writes: the killed actor is restarted, nothing is lost or read twice,
and bad inputs and bad pages (found by the driver, and in an actor) are the same failure records.

One Ray instance for the session, with fractional actor CPUs (on 2 cores, actors that hold every CPU can
starve Ray Data's own tasks), and one Ray job for the module: each actor imports torch and transformers,
seconds of CPU that every further job would pay again."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import pytest
from conftest import draw_page
from PIL import Image
from typer.testing import CliRunner

from vlmcli.cli import app
from vlmcli.errors import ExitCode
from vlmcli.jobs import manifest
from vlmcli.jobs import ocr as ocr_job
from vlmcli.jobs.status import job_status
from vlmcli.progress import NullProgress
from vlmcli.specs import DType, GenerationSpec, ModelSpec, OutputFormat, RunSpec, SplitSpec

pytest.importorskip("ray.data", reason="needs the vlmcli[ray] extra")
from vlmcli.jobs import ray_runner  # noqa: E402  (after the skip: it is only importable with the extra)

pytestmark = [pytest.mark.ray, pytest.mark.model]
PAGES, GOOD_PAGES = 7, 6  # 3 (PDF) + 2 (PNGs) + 2 (TIFF frames, the second over the pixel limit)


@pytest.fixture(scope="session")
def ray_instance():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    # A hang fails instead of blocking (Ray's default waits 30 minutes); 600 s leaves room for the actors' model
    # loads and first pages on a busy 2-core machine.
    ray.data.DataContext.get_current().execution_no_progress_timeout_s = 600
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-inbox")
    pages = [draw_page((300, 400), f"page {n}") for n in (1, 2, 3)]
    pages[0].save(folder / "doc.pdf", save_all=True, append_images=pages[1:], resolution=72)
    draw_page((200, 120), "receipt 12.50").save(folder / "a.png")
    draw_page((120, 200), "note").save(folder / "b.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # fails while listing (driver)
    # Frame 2 is over Pillow's pixel limit: found only when that page is read (in an actor).
    Image.new("L", (200, 150), 255).save(folder / "frames.tiff", save_all=True, compression="tiff_deflate",
                                         append_images=[Image.new("1", (10_000, 10_000), 1)])
    return folder


def _request(checkpoint: Path, inbox: Path, out: Path) -> ocr_job.OcrRequest:
    # 24 tokens forced per page: long enough that a kill after the first page lands mid-job.
    run = RunSpec(model=ModelSpec(model_id=str(checkpoint), offline=True, dtype=DType.float32),
                  split=SplitSpec(), generation=GenerationSpec(max_new_tokens=24, min_new_tokens=24))
    return ocr_job.OcrRequest(inputs=(inbox,), instruction="Read.", run=run, out_dir=out,
                              output_format=OutputFormat.markdown)


class KillAnActorOnce(NullProgress):
    """SIGKILLs an actor when the first page comes back; then notes the actor processes that appear."""

    def __init__(self) -> None:
        self.killed, self.done_at_kill, self.before, self.new = None, None, set(), set()
        self.stopped = threading.Event()

    def advanced(self, done, metrics=None) -> None:
        if self.killed is None:
            workers = set(_map_workers())
            self.killed, self.done_at_kill, self.before = min(workers), done, workers
            os.kill(self.killed, signal.SIGKILL)
            # Watched apart from the pages: on a busy machine the other actor may read every page left
            # before the new one has started, so no page would come back after it appears.
            threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self.stopped.wait(0.2):
            self.new |= set(_map_workers()) - self.before


@pytest.fixture(scope="module")
def local_run(tiny_idefics3, inbox, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    return out, ocr_job.run_ocr(_request(tiny_idefics3, inbox, out), write=lambda text: None)


@pytest.fixture(scope="module")
def ray_run(ray_instance, tiny_idefics3, inbox, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray") / "out"
    killer = KillAnActorOnce()
    summary = ray_runner.run_ocr_on_ray(_request(tiny_idefics3, inbox, out),
                                        ray_runner.RaySpec(actors=2, actor_cpus=0.5), write=lambda text: None,
                                        progress=killer)
    killer.stopped.set()
    return out, summary, killer


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name != ocr_job.FAILURE_REPORT_NAME}


def _report(out: Path) -> list[str]:
    return sorted((out / ocr_job.FAILURE_REPORT_NAME).read_text().splitlines())


def test_two_actors_write_what_a_local_run_writes(local_run, ray_run):
    (local_out, local), (ray_out, on_ray, _) = local_run, ray_run
    assert _files(ray_out) == _files(local_out) and set(_files(ray_out)) == {"doc.pdf.md", "a.png.md", "b.png.md",
                                                                           "frames.tiff.md"}
    assert (on_ray.pages_ok, on_ray.pages_failed, on_ray.exit_code) == (local.pages_ok, local.pages_failed,
                                                                        local.exit_code) == (GOOD_PAGES, 2,
                                                                                             ExitCode.partial)
    keys = sorted(manifest.done_keys(ray_out / manifest.MANIFEST_NAME))
    assert keys == sorted(manifest.done_keys(local_out / manifest.MANIFEST_NAME)) and len(keys) == GOOD_PAGES


def test_bad_input_and_bad_page_are_failure_records(local_run, ray_run, inbox):
    (local_out, _), (ray_out, _, _) = local_run, ray_run
    assert _report(ray_out) == _report(local_out)  # same inputs, pages, categories, messages, exit codes
    report = _report(ray_out)
    assert any('"input": "%s", "page_number": null' % (inbox / "broken.png") in line for line in report)
    assert any('frames.tiff", "page_number": 2, "category": "input"' in line and "pixels" in line
               for line in report)
    status = job_status(ray_out).total
    assert (status.planned, status.done, status.failed, status.pending, status.failed_inputs) == (PAGES, 6, 1, 0, 1)


def _map_workers() -> list[int]:
    """PIDs of this session's Ray Data actors (grandchildren of this process: driver -> raylet -> worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            grandparent = int((Path("/proc") / str(parent) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"MapWorker" in title and grandparent == os.getpid():
            found.append(int(entry.name))
    return found


def test_the_killed_actor_was_restarted_and_no_page_was_lost_or_doubled(ray_run):
    out, summary, killer = ray_run
    assert killer.killed is not None and killer.done_at_kill < GOOD_PAGES
    assert killer.new, "a new actor process must have taken the killed one's place"
    assert summary.pages_ok == GOOD_PAGES
    keys = manifest.done_keys(out / manifest.MANIFEST_NAME)
    assert len(keys) == len(set(keys)) == GOOD_PAGES


def test_cli_ray_needs_an_output_folder_and_the_extra(inbox, monkeypatch):
    result = CliRunner().invoke(app, ["ocr", str(inbox), "--ray", "local"])
    assert result.exit_code == ExitCode.usage and "--ray needs -o" in result.stderr
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if the extra were not installed
    result = CliRunner().invoke(app, ["ocr", str(inbox), "-o", "out", "--ray", "local"])
    assert result.exit_code == ExitCode.dependency and "pip install 'vlmcli[ray]'" in result.stderr
