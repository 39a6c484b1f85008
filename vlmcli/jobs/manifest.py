"""The resume manifest: one JSON line per finished page, fsynced before the next page starts (stdlib only).

`--resume` trusts this file and nothing else: an output file that exists may be
half of a run that was killed, a manifest line exists only once its page is
done. A page is found again by a key over everything that decides its text:
the input's content hash, the page, and the run's settings (model, revision,
adapter, prompt, resolution, decoding); change any of them and the page is
read again.

A line torn by a power cut (no final newline, or not JSON) is dropped when the
manifest is reopened, and the file is rewritten without it, atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vlmcli.cache.keys import settings_fingerprint
from vlmcli.files import atomic_write

MANIFEST_NAME = ".vlmcli-manifest.jsonl"
FORMAT_VERSION = 1
__all__ = ["MANIFEST_NAME", "Manifest", "page_key", "settings_fingerprint"]


def page_key(input_sha256: str, page_index: int, fingerprint: str) -> str:
    """The manifest key of one page: content hash, 0-based page index and settings fingerprint."""
    return f"{input_sha256}:{page_index}:{fingerprint}"


class Manifest:
    """Done pages of an output folder; `record_done` is durable when it returns."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self.dropped_lines = 0  # torn or foreign lines found when resuming
        self._done: dict[str, dict] = {}
        if resume and path.exists():
            self._done = self._read()
        # Rewrite what is kept (nothing, without --resume) before appending, so the
        # file never holds a torn line that the next record would be glued onto.
        atomic_write(path, "".join(_line(key, record) for key, record in self._done.items()))
        self._handle = open(path, "a", encoding="utf-8")

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._done)

    def get(self, key: str) -> dict | None:
        """The stored record of a done page, or None."""
        return self._done.get(key)

    def record_done(self, key: str, record: dict) -> None:
        """Append one page's record and fsync it."""
        self._handle.write(_line(key, record))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._done[key] = record

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def _read(self) -> dict[str, dict]:
        done: dict[str, dict] = {}
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                entry = _parse(line)
                if entry is None:
                    self.dropped_lines += 1
                else:
                    done[entry[0]] = entry[1]
        return done


def _line(key: str, record: dict) -> str:
    # ensure_ascii keeps every line plain ASCII: a lone surrogate in a page's text
    # cannot make the line unencodable, and a byte-level tear is easy to spot.
    return json.dumps({"v": FORMAT_VERSION, "key": key, "record": record}, ensure_ascii=True) + "\n"


def _parse(line: str) -> tuple[str, dict] | None:
    if not line.endswith("\n"):
        return None  # the last line of a run killed mid-write
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or entry.get("v") != FORMAT_VERSION:
        return None
    key, record = entry.get("key"), entry.get("record")
    if not isinstance(key, str) or not isinstance(record, dict):
        return None
    return key, record
