"""`vlmcli ocr --ray` on a local Ray instance: 2 Ray Data actors on the tiny model write what a local run writes,
nothing is lost or read twice, and every fault is one page's failure record while the other pages are done:
bad inputs and bad pages (found by the driver, and in an actor) as in a local run, a page that kills its actor
(SIGKILL, as the out-of-memory killer sends, when an actor reaches that page: a fixed point, not a timer) tried
twice on a restarted actor and then recorded as a crash, and a page whose reading raises a plain Python error.

One Ray instance for the module, with fractional actor CPUs (on 2 cores, actors that hold every CPU can starve
Ray Data's own tasks), and one Ray job: each actor, and each restart, imports torch and transformers, seconds of
CPU that every further job would pay again."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import draw_page
from PIL import Image
from typer.testing import CliRunner

from vlmcli.cli import app
from vlmcli.errors import ExitCode
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs import manifest
from vlmcli.jobs import ocr as ocr_job
from vlmcli.jobs.status import job_status
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.progress import NullProgress
from vlmcli.specs import DType, GenerationSpec, ModelSpec, OutputFormat, RunSpec, SplitSpec

pytest.importorskip("ray.data", reason="needs the vlmcli[ray] extra")
from vlmcli.jobs import ray_actor, ray_runner  # noqa: E402  (after the skip: it is only importable with the extra)

pytestmark = [pytest.mark.ray, pytest.mark.model]
GOOD_PAGES = 6  # 3 (PDF) + 2 (PNGs) + the first TIFF frame; the second is over the pixel limit
FAULTY = ("crash.png", "raise.png")  # read by a local run; on Ray, FaultyPageTranscriber's faults


class FaultyPageTranscriber(ray_actor.PageTranscriber):
    """The Ray actor, with two faults at fixed points: reaching `crash.png` notes the attempt (a file named
    after the actor's process) and SIGKILLs the actor; reaching `raise.png` raises a plain Python error."""

    attempts_dir = ""  # set before the class is pickled for the actors

    def transcribe_pages(self, refs):
        for ref in refs:
            if ref.source.name == "crash.png":
                (Path(self.attempts_dir) / str(os.getpid())).touch()
                os.kill(os.getpid(), signal.SIGKILL)
            if ref.source.name == "raise.png":
                raise ValueError("a plain Python error, not a VlmcliError")
            yield from super().transcribe_pages([ref])


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    # A hang fails instead of blocking (Ray's default waits 30 minutes); 600 s leaves room for the actors' model
    # loads, restarts and first pages on a busy 2-core machine.
    ray.data.DataContext.get_current().execution_no_progress_timeout_s = 600
    # The faulty actor class travels by value: Ray's workers cannot import this test module by name.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-inbox")
    pages = [draw_page((300, 400), f"page {n}") for n in (1, 2, 3)]
    pages[0].save(folder / "doc.pdf", save_all=True, append_images=pages[1:], resolution=72)
    draw_page((200, 120), "receipt 12.50").save(folder / "a.png")
    draw_page((120, 200), "note").save(folder / "b.png")
    for name in FAULTY:
        draw_page((160, 120), name).save(folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # fails while listing (driver)
    # Frame 2 is over Pillow's pixel limit: found only when that page is read (in an actor).
    Image.new("L", (200, 150), 255).save(folder / "frames.tiff", save_all=True, compression="tiff_deflate",
                                         append_images=[Image.new("1", (10_000, 10_000), 1)])
    return folder


def _request(checkpoint: Path, inbox: Path, out: Path) -> ocr_job.OcrRequest:
    run = RunSpec(model=ModelSpec(model_id=str(checkpoint), offline=True, dtype=DType.float32),
                  split=SplitSpec(), generation=GenerationSpec(max_new_tokens=8, min_new_tokens=8))
    return ocr_job.OcrRequest(inputs=(inbox,), instruction="Read.", run=run, out_dir=out,
                              output_format=OutputFormat.markdown)


@pytest.fixture(scope="module")
def local_run(tiny_idefics3, inbox, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    return out, ocr_job.run_ocr(_request(tiny_idefics3, inbox, out), write=lambda text: None)


@pytest.fixture(scope="module")
def ray_run(ray_instance, tiny_idefics3, inbox, tmp_path_factory):
    out, attempts = tmp_path_factory.mktemp("ray") / "out", tmp_path_factory.mktemp("crash-attempts")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FaultyPageTranscriber, "attempts_dir", str(attempts))
        patch.setattr(ray_runner, "PageTranscriber", FaultyPageTranscriber)
        summary = ray_runner.run_ocr_on_ray(_request(tiny_idefics3, inbox, out),
                                            ray_runner.RaySpec(actors=2, actor_cpus=0.5), write=lambda text: None)
    return out, summary, attempts


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name != ocr_job.FAILURE_REPORT_NAME}


def _report(out: Path) -> list[dict]:
    lines = (out / ocr_job.FAILURE_REPORT_NAME).read_text().splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda entry: entry["input"])


def test_two_actors_write_what_a_local_run_writes(local_run, ray_run):
    (local_out, local), (ray_out, on_ray, _) = local_run, ray_run
    expected = {name: data for name, data in _files(local_out).items() if name.removesuffix(".md") not in FAULTY}
    assert _files(ray_out) == expected and set(expected) == {"doc.pdf.md", "a.png.md", "b.png.md", "frames.tiff.md"}
    assert (local.pages_ok, local.pages_failed, local.exit_code) == (GOOD_PAGES + 2, 2, ExitCode.partial)
    assert (on_ray.pages_ok, on_ray.pages_failed, on_ray.exit_code) == (GOOD_PAGES, 4, ExitCode.partial)
    keys = manifest.done_keys(ray_out / manifest.MANIFEST_NAME)
    assert len(keys) == len(set(keys)) == GOOD_PAGES  # nothing read twice
    assert set(keys) < set(manifest.done_keys(local_out / manifest.MANIFEST_NAME))  # same fingerprint as local


def test_bad_inputs_and_pages_are_failure_records_as_in_a_local_run(local_run, ray_run, inbox):
    (local_out, _), (ray_out, _, _) = local_run, ray_run
    faults = [entry for entry in _report(ray_out) if Path(entry["input"]).name in FAULTY]
    assert [entry for entry in _report(ray_out) if entry not in faults] == _report(local_out)
    report = _report(local_out)
    assert report[0] == {"input": str(inbox / "broken.png"), "page_number": None, "category": "input",
                         "message": report[0]["message"], "attempts": 1, "exit_code": ExitCode.input}
    assert report[1]["input"].endswith("frames.tiff") and report[1]["page_number"] == 2
    assert report[1]["category"] == "input" and "pixels" in report[1]["message"]


def test_a_page_that_kills_its_actor_is_tried_twice_then_recorded_as_a_crash(ray_run, inbox):
    out, _, attempts = ray_run
    tried_by = sorted(int(path.name) for path in attempts.iterdir())
    assert len(tried_by) == len(set(tried_by)) == ray_runner.PAGE_ATTEMPTS == 2  # a new process each time
    crash = next(entry for entry in _report(out) if entry["input"] == str(inbox / "crash.png"))
    assert crash == {"input": str(inbox / "crash.png"), "page_number": 1, "category": "crash",
                     "message": f"{inbox / 'crash.png'}: page 1: the Ray actor reading it died 2 time(s) "
                                "(out of memory, or a native crash)", "attempts": 2, "exit_code": ExitCode.resource}


def test_a_page_that_raises_a_plain_error_is_its_own_failure_record(ray_run, inbox):
    out, _, _ = ray_run
    raised = next(entry for entry in _report(out) if entry["input"] == str(inbox / "raise.png"))
    assert raised["category"] == "crash" and raised["page_number"] == 1 and raised["attempts"] == 1
    assert raised["message"] == f"{inbox / 'raise.png'}: page 1: ValueError: a plain Python error, not a VlmcliError"


def test_status_and_manifest_count_every_page_once_with_the_actors_settings(ray_run):
    out, _, _ = ray_run
    status = job_status(out).total
    assert (status.planned, status.done, status.failed, status.pending, status.failed_inputs) == (9, 6, 3, 0, 1)
    entries = manifest.load_entries(out / manifest.MANIFEST_NAME)[0]
    settings = [entry for entry in entries if "settings" in entry]
    assert len(settings) == 1 and settings[0]["settings"]["dtype"] == "float32"
    assert settings[0]["settings"]["device"] == "cpu" and "image_features" in settings[0]["settings"]["levers"]
    fingerprint = settings[0]["fingerprint"]
    assert all(entry["key"].endswith(":" + fingerprint) for entry in entries if "record" in entry)
    failed = sorted(entry["failed"]["category"] for entry in entries if "failed" in entry)
    assert failed == ["crash", "crash", "input"]


def test_pages_lost_with_a_task_that_held_others_are_read_again_one_per_task(tmp_path):
    """With several pages per task (--batch-size, or over MAX_BLOCKS pages), a task whose actor dies loses all
    of them: they are read once more one per task, and only the page that still loses its task is a crash."""
    refs = [PageRef(tmp_path / f"{n}.png", 0, 1, False) for n in range(5)]
    passes = []

    def transcribe_pass(positions, blocks, pages_per_call):
        passes.append((list(positions), blocks, pages_per_call))
        for start in range(0, len(positions), pages_per_call):
            task = positions[start:start + pages_per_call]
            if 3 not in task:  # page 3 kills every actor that reads it, and so the rest of its task
                yield from ((p, PageResult(refs[p].source, 1, "text", 1, 1, 0.0, "stop"), {}) for p in task)

    answers = list(ray_runner._isolating_crashes(transcribe_pass, refs, [0, 1, 2, 3, 4], 2, 2, NullProgress()))
    assert passes == [([0, 1, 2, 3, 4], 3, 2), ([2, 3], 2, 1)]
    assert [position for position, _, _ in answers] == [0, 1, 4, 2, 3]
    crash = answers[-1][1]
    assert isinstance(crash, PageFailure) and crash.error.category == "crash" and crash.attempts == 2


def test_cli_ray_needs_an_output_folder_and_the_extra(inbox, monkeypatch):
    result = CliRunner().invoke(app, ["ocr", str(inbox), "--ray", "local"])
    assert result.exit_code == ExitCode.usage and "--ray needs -o" in result.stderr
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if the extra were not installed
    result = CliRunner().invoke(app, ["ocr", str(inbox), "-o", "out", "--ray", "local"])
    assert result.exit_code == ExitCode.dependency and "pip install 'vlmcli[ray]'" in result.stderr


def test_a_page_read_by_an_actor_of_another_kind_is_recorded_under_its_own_settings(tiny_idefics3, inbox,
                                                                                     tmp_path):
    """Actors on nodes of another kind (AVX2 beside AVX512-BF16) resolve other settings than the probe: their
    pages are recorded under the settings they were read with, said once, never under the run's."""
    notes = []

    class Notes(NullProgress):
        def note(self, text, *, detail=False):
            notes.append(text)

    request, expected = _request(tiny_idefics3, inbox, tmp_path / "out"), {"device": "cpu", "dtype": "float32",
                                                                           "levers": ["heap"]}
    cluster = ray_runner._Cluster(None, ray_runner.RaySpec(), request, frozenset(), Notes())
    cluster._settings = expected  # as the probe found them
    other = {**expected, "dtype": "bfloat16"}
    with ocr_job.Job(request, lambda text: None, Notes(), lambda failure: None,
                     resolved=cluster.actor_settings) as job:
        assert cluster.settings_of_answer(expected, job) is None
        assert cluster.settings_of_answer(other, job) == ocr_job.run_settings(request, other)
        job.account(PageResult(inbox / "a.png", 1, "text", 1, 1, 0.0, "stop"), cluster.settings_of_answer(other, job))
    assert len(notes) == 1 and "an actor reads with cpu, bfloat16" in notes[0]
    entries = manifest.load_entries(tmp_path / "out" / manifest.MANIFEST_NAME)[0]
    (recorded,) = [entry for entry in entries if "settings" in entry]
    assert recorded["settings"]["dtype"] == "bfloat16"
    assert [entry["key"].rpartition(":")[2] for entry in entries if "record" in entry] == [recorded["fingerprint"]]
