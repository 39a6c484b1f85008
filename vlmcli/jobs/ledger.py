"""The manifest side of an OCR run: which pages are done, recording new ones, the run's plan and its failures;
each finished page's text is also written through to the page cache, where `vlmcli ask` finds the text of
scanned pages.

Shared by the local run (jobs/ocr.py) and the Ray run (jobs/ray_runner.py), so both
write the same manifest lines for the same pages.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from vlmcli.cache import keys
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
RESULT_FIELDS = [f.name for f in dataclasses.fields(PageResult)
                 if f.name not in ("source", "page_number", "words", "parsed")]
# Fields added since manifests were first written: a record without one has its default (the page is done).
LATER_RESULT_FIELDS = ("turned_deg",)


class Ledger:
    """Done pages (this run's manifest, and with `resume` every other one in the folder) and new records.

    `settings` gives the run's settings (cache/keys.py `run_settings`) when they are first needed, which is
    after the inputs are listed: resolving them may import torch, and a typo in an input must not wait for it.
    """

    def __init__(self, out_dir: Path | None, settings: Callable[[], dict], *, resume: bool,
                 shard_label: str | None, progress: Progress, cache: PageCache | None = None) -> None:
        self._settings_of_run, self.shard_label, self._cache, self._progress = settings, shard_label, cache, progress
        self._hashes: dict[Path, str] = {}  # an input is hashed once per run
        self._reused: set[tuple[Path, int]] = set()
        self._stale: Counter[str] = Counter()  # pages found done under another fingerprint, by that fingerprint
        self._manifest = None
        if out_dir is not None:
            path = out_dir / manifest.manifest_name(shard_label)
            others = [p for p in manifest.manifest_paths(out_dir) if p != path]
            try:
                self._manifest = manifest.Manifest(path, resume=resume, others=others)
            except OSError as exc:
                raise OutputError(f"{path}: cannot be read or written ({exc.strerror or exc})",
                                  hint="fix the file's permissions, or move it away and start over") from None
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

    @cached_property
    def settings(self) -> dict:
        return self._settings_of_run()

    @cached_property
    def fingerprint(self) -> str:
        return keys.settings_fingerprint(self.settings)

    def reuse(self, ref: PageRef) -> PageResult | None:
        """A page's result from a manifest, or None if it must be read."""
        if self._manifest is None:
            return None
        key = self._key(ref.source, ref.page_index)
        stored = self._manifest.get(key)
        if stored is None or not all(name in stored for name in RESULT_FIELDS if name not in LATER_RESULT_FIELDS):
            elsewhere = [fingerprint for fingerprint in self._manifest.fingerprints_done(key.rpartition(":")[0])
                         if fingerprint != self.fingerprint]
            if elsewhere:
                self._stale[elsewhere[-1]] += 1  # compared with the latest settings the page was read with
            return None
        self._reused.add((ref.source, ref.page_number))
        return PageResult(source=ref.source, page_number=ref.page_number,
                          **{name: stored[name] for name in RESULT_FIELDS if name in stored})

    def record(self, item: PageResult, settings: dict | None = None) -> int:
        """Make a finished page durable; 1 if it came from the manifest (nothing to write), else 0. `settings`:
        those the page was read with where they are not the run's (a Ray actor on another kind of node)."""
        fingerprint = self.fingerprint if settings is None else keys.settings_fingerprint(settings)
        self._write_through(item, fingerprint)
        if self._manifest is None:
            return 0
        if (item.source, item.page_number) in self._reused:
            return 1
        if settings is not None:
            self._write(self._manifest.record_settings, fingerprint, settings)
        stored = {name: getattr(item, name) for name in RESULT_FIELDS}
        self._write(self._manifest.record_done, self._key(item.source, item.page_number - 1, fingerprint), stored)
        return 0

    def record_failure(self, failure: PageFailure) -> None:
        """A failed page, for `vlmcli status` (a failed input is part of the plan instead)."""
        if self._manifest is None or failure.page_number is None:
            return
        self._write(self._manifest.record_failed, self._key(failure.source, failure.page_number - 1),
                    {"input": str(failure.source), "page_number": failure.page_number,
                     "category": failure.error.category, "exit_code": int(failure.error.exit_code)})

    def record_plan(self, refs: list[PageRef], failed_inputs: list[Path], outputs: list[str],
                    tables: str | None) -> None:
        """The pages this run set out to read (hashing every input now, before the model loads), the settings
        behind their keys, and the files it writes (relative to the output folder) and its tables folder; says
        how many done pages are read again because their settings changed."""
        if self._manifest is None:
            return
        page_keys = [self._key(ref.source, ref.page_index) for ref in refs]
        if page_keys:
            self._write(self._manifest.record_settings, self.fingerprint, self.settings)
        self._write(self._manifest.record_plan, page_keys, [str(path) for path in failed_inputs], self.shard_label,
                    outputs, tables)
        if self._stale:
            changes = dict.fromkeys(keys.settings_diff(self._manifest.settings(fingerprint), self.settings)
                                    for fingerprint in self._stale)
            self._progress.note(f"resume: {sum(self._stale.values())} page(s) done under other settings are read "
                                f"again ({' | '.join(changes)})")

    def _write(self, append, *args) -> None:
        try:
            append(*args)
        except OSError as exc:
            raise OutputError(f"{self._manifest.path}: cannot record the run ({exc.strerror or exc})",
                              hint="free space or fix the folder, then rerun with --resume") from None

    def _write_through(self, item: PageResult, fingerprint: str) -> None:
        if self._cache is None or self._cache.disabled or not item.source.is_file():
            return
        self._cache.put_text(self._hash(item.source), item.page_number - 1, OCR, item.text, fingerprint)

    def _key(self, source: Path, page_index: int, fingerprint: str | None = None) -> str:
        return manifest.page_key(self._hash(source), page_index, fingerprint or self.fingerprint)

    def _hash(self, source: Path) -> str:
        if source not in self._hashes:
            self._hashes[source] = file_sha256(source)
        return self._hashes[source]
