"""State machine over run / crash / resume for the manifest and the atomic writer (Hypothesis stateful).

Runs go through the real `ocr_job.run_ocr` (manifest, sink, atomic writes); only
reading a page is faked. A crash is an exception thrown out of the k-th fsync
or rename, the two points where data becomes durable, and a crash at an fsync
first loses half of the bytes written since that file's last fsync (a power
cut); a torn line is also appended to the manifest by hand, and a SIGKILL
leaves a temporary file behind.
After every step: each output file is absent or complete, and each page the
manifest calls done carries its correct text.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from vlmcli.files import TEMP_MARK
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs import manifest
from vlmcli.jobs import ocr as ocr_job
from vlmcli.pipeline.results import PageResult
from vlmcli.specs import OutputFormat, RunSpec

DOCUMENTS = {"a.pdf": 3, "b.png": 1, "c.tiff": 2}  # name -> pages


class Crash(BaseException):
    """A process death at a durability point (BaseException: nothing in vlmcli may swallow it)."""


_SYNCED_BYTES: dict[str, int] = {}  # file -> its size at its last fsync


def _synced(descriptor: int) -> None:
    path = os.readlink(f"/proc/self/fd/{descriptor}")
    if os.path.isfile(path):
        _SYNCED_BYTES[path] = os.fstat(descriptor).st_size


def _lose_unsynced_half(descriptor: int) -> None:
    """A power cut before this fsync: half of what was written since the last one never reached the disk."""
    path = os.readlink(f"/proc/self/fd/{descriptor}")
    if os.path.isfile(path):
        synced = min(_SYNCED_BYTES.get(path, 0), os.fstat(descriptor).st_size)
        os.ftruncate(descriptor, synced + (os.fstat(descriptor).st_size - synced) // 2)


class ManifestMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vlmcli-state-"))
        self.inputs = []
        for name in DOCUMENTS:
            (self.root / name).write_bytes(f"content of {name}".encode())
            self.inputs.append(self.root / name)
        self.out = self.root / "out"
        self.pages_read: list[tuple[str, int]] = []
        self.expected = self._clean_outputs()
        self.completed = False

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(resume=st.booleans(), crash_at=st.none() | st.integers(1, 12))
    def run(self, resume: bool, crash_at: int | None) -> None:
        done_before = self._done_keys() if resume else set()
        read_before = len(self.pages_read)
        crashed = self._run(self.out, resume, crash_at)
        self.completed = not crashed
        if not crashed:
            read_now = len(self.pages_read) - read_before
            assert read_now == sum(DOCUMENTS.values()) - len(done_before), "reused exactly the pages done"
            assert self._outputs(self.out) == self.expected

    @precondition(lambda self: (self.out / manifest.MANIFEST_NAME).exists())
    @rule(fragment=st.sampled_from(['{"v": 1, "key": "', '{"v": 1, "key": "x", "record": {"te', "\x00\x00", "{"]))
    def power_cut_mid_line(self, fragment: str) -> None:
        with open(self.out / manifest.MANIFEST_NAME, "a") as handle:
            handle.write(fragment)
        self.completed = False

    @precondition(lambda self: self.out.exists())
    @rule()
    def sigkill_leaves_a_temporary_file(self) -> None:
        (self.out / f".a.pdf.txt{TEMP_MARK}dead.tmp").write_text("half a fi")
        self.completed = False

    @invariant()
    def outputs_are_absent_or_complete(self) -> None:
        if not hasattr(self, "out"):
            return
        for name, content in self._outputs(self.out).items():
            assert content == self.expected[name], f"{name} is incomplete or wrong"

    @invariant()
    def done_pages_have_their_text(self) -> None:
        if not hasattr(self, "out"):
            return
        for record in self._done_records():
            assert record["text"].startswith("text of ")

    @invariant()
    def a_completed_run_leaves_no_temporary_file(self) -> None:
        if getattr(self, "completed", False):
            assert not list(self.out.rglob("*.tmp"))

    def _clean_outputs(self) -> dict[str, bytes]:
        clean = self.root / "clean"
        assert not self._run(clean, resume=False, crash_at=None)
        self.pages_read.clear()
        return self._outputs(clean)

    def _run(self, out: Path, resume: bool, crash_at: int | None) -> bool:
        """One `vlmcli ocr -o out` run; True if it crashed."""
        request = ocr_job.OcrRequest(inputs=tuple(self.inputs), instruction="Read.", run=RunSpec(),
                                   output_format=OutputFormat.text, out_dir=out, resume=resume, force=not resume)
        real_fsync, real_replace, calls = os.fsync, os.replace, [0]

        def durability_point(real):
            def point(*args):
                calls[0] += 1
                if crash_at is not None and calls[0] == crash_at:
                    if real is real_fsync:
                        _lose_unsynced_half(args[0])
                    raise Crash()
                result = real(*args)
                if real is real_fsync:
                    _synced(args[0])
                return result
            return point

        original_transcribe = ocr_job.transcribe
        ocr_job.transcribe = self._transcribe
        os.fsync, os.replace = durability_point(real_fsync), durability_point(real_replace)
        try:
            ocr_job.run_ocr(request, write=lambda text: None)
            return False
        except Crash:
            return True
        finally:
            os.fsync, os.replace = real_fsync, real_replace
            ocr_job.transcribe = original_transcribe

    def _transcribe(self, inputs, instruction, run, *, pages=None, progress=None, reuse=None, on_plan=None,
                    **kwargs):
        """`transcribe` without a model: same order, same use of `reuse` and `on_plan`; a page's text is known."""
        refs = [PageRef(path, index, DOCUMENTS[path.name], path.suffix == ".pdf") for path in inputs
                for index in range(DOCUMENTS[path.name])]
        stored_pages = [reuse(ref) if reuse else None for ref in refs]
        if on_plan is not None:
            on_plan(refs)
        for ref, stored in zip(refs, stored_pages):
            if stored is None:
                self.pages_read.append((ref.source.name, ref.page_index))
                stored = PageResult(ref.source, ref.page_number, f"text of {ref.source.name} page {ref.page_number}",
                                    4, 3, 0.25, "stop")
            yield stored

    def _outputs(self, out: Path) -> dict[str, bytes]:
        if not out.exists():
            return {}
        return {p.name: p.read_bytes() for p in out.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.name != ocr_job.FAILURE_REPORT_NAME}

    def _done_records(self) -> list[dict]:
        path = self.out / manifest.MANIFEST_NAME
        if not path.exists():
            return []
        lines = path.read_text(errors="replace").splitlines(keepends=True)
        return [entry[1] for entry in map(manifest._parse, lines) if entry is not None]

    def _done_keys(self) -> set[str]:
        path = self.out / manifest.MANIFEST_NAME
        if not path.exists():
            return set()
        lines = path.read_text(errors="replace").splitlines(keepends=True)
        return {entry[0] for entry in map(manifest._parse, lines) if entry is not None}


ManifestMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=8, deadline=None)
TestManifestMachine = ManifestMachine.TestCase
