"""The manifest side of an OCR run: which pages are done, recording new ones, the run's plan and its failures;
each finished page's text is also written through to the page cache, where `vlmcli ask` finds the text of
scanned pages.

Shared by the local run (jobs/ocr.py) and the Ray run (jobs/ray_runner.py), so both
write the same manifest lines for the same pages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vlmcli.cache.store import OCR, PageCache
from vlmcli.errors import OutputError
from vlmcli.files import file_sha256
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs import manifest
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.progress import Progress

# What the manifest keeps of a finished page: all of it but its source and number,
# which come from the page being resumed (the same content may sit at another path),
# and its words, which are placed again from the page cache.
RESULT_FIELDS = [f.name for f in dataclasses.fields(PageResult) if f.name not in ("source", "page_number", "words")]


class Ledger:
    """Done pages (this run's manifest, and with `resume` every other one in the folder) and new records."""

    def __init__(self, out_dir: Path | None, fingerprint: str, *, resume: bool, shard_label: str | None,
                 progress: Progress, cache: PageCache | None = None) -> None:
        self.fingerprint, self.shard_label, self._cache = fingerprint, shard_label, cache
        self._hashes: dict[Path, str] = {}  # an input is hashed once per run
        self._reused: set[tuple[Path, int]] = set()
        self._manifest = None
        if out_dir is not None:
            path = out_dir / manifest.manifest_name(shard_label)
            others = [p for p in manifest.manifest_paths(out_dir) if p != path]
            self._manifest = manifest.Manifest(path, resume=resume, others=others)
            if self._manifest.dropped_lines:
                progress.note(f"{self._manifest.path}: {self._manifest.dropped_lines} torn or unreadable line(s) "
                              "dropped; their pages are read again")

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._manifest is not None:
            self._manifest.close()
        if self._cache is not None:
            self._cache.close()

    def reuse(self, ref: PageRef) -> PageResult | None:
        """A page's result from a manifest, or None if it must be read."""
        if self._manifest is None:
            return None
        stored = self._manifest.get(self._key(ref.source, ref.page_index))
        if stored is None or not all(name in stored for name in RESULT_FIELDS):
            return None
        self._reused.add((ref.source, ref.page_number))
        return PageResult(source=ref.source, page_number=ref.page_number,
                          **{name: stored[name] for name in RESULT_FIELDS})

    def record(self, item: PageResult) -> int:
        """Make a finished page durable; 1 if it came from the manifest (nothing to write), else 0."""
        self._write_through(item)
        if self._manifest is None:
            return 0
        if (item.source, item.page_number) in self._reused:
            return 1
        stored = {name: getattr(item, name) for name in RESULT_FIELDS}
        self._write(self._manifest.record_done, self._key(item.source, item.page_number - 1), stored)
        return 0

    def record_failure(self, failure: PageFailure) -> None:
        """A failed page, for `vlmcli status` (a failed input is part of the plan instead)."""
        if self._manifest is None or failure.page_number is None:
            return
        self._write(self._manifest.record_failed, self._key(failure.source, failure.page_number - 1),
                    {"input": str(failure.source), "page_number": failure.page_number,
                     "category": failure.error.category, "exit_code": int(failure.error.exit_code)})

    def record_plan(self, refs: list[PageRef], failed_inputs: list[Path]) -> None:
        """The pages this run set out to read (hashing every input now, before the model loads)."""
        if self._manifest is None:
            return
        keys = [self._key(ref.source, ref.page_index) for ref in refs]
        self._write(self._manifest.record_plan, keys, [str(path) for path in failed_inputs], self.shard_label)

    def _write(self, append, *args) -> None:
        try:
            append(*args)
        except OSError as exc:
            raise OutputError(f"{self._manifest.path}: cannot record the run ({exc.strerror or exc})",
                              hint="free space or fix the folder, then rerun with --resume") from None

    def _write_through(self, item: PageResult) -> None:
        if self._cache is None or self._cache.disabled or not item.source.is_file():
            return
        self._cache.put_text(self._hash(item.source), item.page_number - 1, OCR, item.text, self.fingerprint)

    def _key(self, source: Path, page_index: int) -> str:
        return manifest.page_key(self._hash(source), page_index, self.fingerprint)

    def _hash(self, source: Path) -> str:
        if source not in self._hashes:
            self._hashes[source] = file_sha256(source)
        return self._hashes[source]
