"""The resume manifest: one JSON line per finished page, fsynced before the next page starts (stdlib only).

`--resume` trusts the manifests and nothing else: an output file that exists may
be half of a run that was killed, a manifest line exists only once its page is
done. A page is found again by a key over everything that decides its text:
the input's content hash, the page, and the run's settings (model, revision,
adapter, prompt, resolution, decoding); change any of them and the page is
read again.

Each run writes one manifest: `.vlmcli-manifest.jsonl`, or one per shard of a
job array (`.vlmcli-manifest.K-of-N.jsonl`), so shards never write to one file.
`--resume` reads every manifest in the folder, so a rerun with another number
of shards still skips finished pages. Besides finished pages, a manifest holds
the run's plan (the keys of the pages it set out to read, and the inputs that
could not be opened) and its failed pages, from which `vlmcli status` counts
what is pending; a resumed run reads its failed pages again. It also holds the
settings behind each fingerprint its keys end with (one line per fingerprint),
so a resume can say why a page recorded under other settings is read again.

A plan also names the output files the run will write (relative to the folder)
and its tables folder: those, with the manifests themselves, are the files vlmcli
wrote there (jobs/folder.py keeps everything else safe).

A line torn by a power cut (no final newline, or not JSON), or one whose fields
have the wrong types, is dropped when the manifest is reopened, and the file is
rewritten without it, atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vlmcli.files import atomic_write

MANIFEST_NAME = ".vlmcli-manifest.jsonl"
_PREFIX, _SUFFIX = ".vlmcli-manifest", ".jsonl"
MANIFEST_GLOB = f"{_PREFIX}*"  # manifests and their backups
BACKUP_SUFFIX = ".bak"  # a manifest that --force set aside: `.vlmcli-manifest.jsonl.<seconds>.bak`
FORMAT_VERSION = 1


def manifest_name(shard_label: str | None) -> str:
    """The manifest of a whole run, or of shard `K-of-N`."""
    return MANIFEST_NAME if shard_label is None else f"{_PREFIX}.{shard_label}{_SUFFIX}"


def manifest_paths(out_dir: Path) -> list[Path]:
    """Every manifest in an output folder, sorted (temporary files of a rewrite are not manifests)."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir()
                  if p.name.startswith(_PREFIX) and p.name.endswith(_SUFFIX) and p.is_file())


def backup_paths(out_dir: Path) -> list[Path]:
    """The manifests that earlier runs with --force set aside."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir()
                  if p.name.startswith(_PREFIX) and p.name.endswith(BACKUP_SUFFIX) and p.is_file())


def page_key(input_sha256: str, page_index: int, fingerprint: str) -> str:
    """The manifest key of one page: content hash, 0-based page index and settings fingerprint."""
    return f"{input_sha256}:{page_index}:{fingerprint}"


class Manifest:
    """Done pages of an output folder; `record_done` is durable when it returns.

    With `resume`, the pages done in `others` (the folder's other manifests, which
    other shards may be appending to) count as done too; they are only read.
    """

    def __init__(self, path: Path, *, resume: bool, others: list[Path] = ()) -> None:
        self.path = path
        self.dropped_lines = 0  # torn or foreign lines found when resuming
        self._done: dict[str, dict] = {}
        self._elsewhere: dict[str, dict] = {}
        self._own_settings: dict[str, dict] = {}  # fingerprint -> settings, as this file holds them
        self._settings: dict[str, dict] = {}  # ...and as any manifest read holds them
        self._fingerprints: dict[str, dict[str, None]] | None = None  # "sha256:page" -> fingerprints done, in order
        kept: list[dict] = []
        if resume and path.exists():
            entries, self.dropped_lines = load_entries(path)
            kept = [entry for entry in entries if "failed" not in entry]  # failed pages are read again
            self._done = {entry["key"]: entry["record"] for entry in kept if "record" in entry}
            self._own_settings = {entry["fingerprint"]: entry["settings"] for entry in kept if "settings" in entry}
        for other in others if resume else ():
            done, settings, _ = _load_done(other)
            self._elsewhere.update(done)
            self._settings.update(settings)
        self._settings.update(self._own_settings)
        # Rewrite what is kept (nothing, without --resume) before appending, so the
        # file never holds a torn line that the next record would be glued onto.
        atomic_write(path, "".join(_line(entry) for entry in kept))
        self._handle = open(path, "a", encoding="utf-8")

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._done)

    def get(self, key: str) -> dict | None:
        """The stored record of a done page, or None."""
        found = self._done.get(key)
        return found if found is not None else self._elsewhere.get(key)

    def record_done(self, key: str, record: dict) -> None:
        """Append one page's record and fsync it."""
        self._append({"key": key, "record": record})
        self._done[key] = record
        if self._fingerprints is not None:
            page, _, fingerprint = key.rpartition(":")
            self._fingerprints.setdefault(page, {})[fingerprint] = None

    def record_settings(self, fingerprint: str, settings: dict) -> None:
        """Append the settings behind `fingerprint`, once per manifest."""
        if fingerprint not in self._own_settings:
            self._append({"fingerprint": fingerprint, "settings": settings})
            self._own_settings[fingerprint] = self._settings[fingerprint] = settings

    def settings(self, fingerprint: str) -> dict | None:
        """The settings a fingerprint stands for, if a manifest read recorded them."""
        return self._settings.get(fingerprint)

    def fingerprints_done(self, page: str) -> list[str]:
        """The fingerprints under which a page (`sha256:index`, a key less its fingerprint) is done, the latest
        last (this manifest's after the others')."""
        if self._fingerprints is None:
            self._fingerprints = {}
            for key in (*self._elsewhere, *self._done):
                done_page, _, fingerprint = key.rpartition(":")
                self._fingerprints.setdefault(done_page, {}).pop(fingerprint, None)
                self._fingerprints[done_page][fingerprint] = None
        return list(self._fingerprints.get(page, ()))

    def record_failed(self, key: str, failure: dict) -> None:
        """Append a failed page (for `vlmcli status`; a resumed run reads it again)."""
        self._append({"key": key, "failed": failure})

    def record_plan(self, page_keys: list[str], failed_inputs: list[str], shard: str | None,
                    outputs: list[str] = (), tables: str | None = None) -> None:
        """Append what this run set out to do: its pages' keys, the inputs that could not be opened, and the
        files it will write (relative to the folder) and its tables folder."""
        self._append({"plan": {"shard": shard, "pages": page_keys, "failed_inputs": failed_inputs,
                               "outputs": list(outputs), "tables": tables}})

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def _append(self, entry: dict) -> None:
        self._handle.write(_line(entry))
        self._handle.flush()
        os.fsync(self._handle.fileno())


def load_entries(path: Path) -> tuple[list[dict], int]:
    """The whole lines of a manifest as dicts (each has `key` and `record`, `key` and `failed`, `plan`, or
    `fingerprint` and `settings`), and how many lines were torn or foreign."""
    entries, dropped = [], 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            entry = _parse_entry(line)
            if entry is None:
                dropped += 1
            else:
                entries.append(entry)
    return entries, dropped


def done_keys(path: Path) -> list[str]:
    """The keys of a manifest's finished pages, in the order they were recorded."""
    return [entry["key"] for entry in load_entries(path)[0] if "record" in entry]


def _load_done(path: Path) -> tuple[dict[str, dict], dict[str, dict], int]:
    """A manifest's finished pages (key -> record), the settings of its fingerprints, and its torn lines."""
    try:
        entries, dropped = load_entries(path)
    except FileNotFoundError:  # another shard's manifest, rewritten or removed meanwhile
        return {}, {}, 0
    done = {entry["key"]: entry["record"] for entry in entries if "record" in entry}
    settings = {entry["fingerprint"]: entry["settings"] for entry in entries if "settings" in entry}
    return done, settings, dropped


def _line(entry: dict) -> str:
    # ensure_ascii keeps every line plain ASCII: a lone surrogate in a page's text
    # cannot make the line unencodable, and a byte-level tear is easy to spot.
    return json.dumps({"v": FORMAT_VERSION, **entry}, ensure_ascii=True) + "\n"


def _parse(line: str) -> tuple[str, dict] | None:
    """A finished page's (key, record), or None for any other line."""
    entry = _parse_entry(line)
    return (entry["key"], entry["record"]) if entry is not None and "record" in entry else None


def _parse_entry(line: str) -> dict | None:
    if not line.endswith("\n"):
        return None  # the last line of a run killed mid-write
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or entry.get("v") != FORMAT_VERSION:
        return None
    if "plan" in entry:
        return entry if _is_plan(entry["plan"]) else None
    if isinstance(entry.get("fingerprint"), str) and isinstance(entry.get("settings"), dict):
        return entry
    key = entry.get("key")
    if isinstance(key, str) and (isinstance(entry.get("record"), dict) or isinstance(entry.get("failed"), dict)):
        return entry
    return None


def _is_plan(plan: object) -> bool:
    """A plan whose fields have the types status and the folder rules read (a line edited by hand may not)."""
    def strings(value: object) -> bool:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)

    return (isinstance(plan, dict) and strings(plan.get("pages", [])) and strings(plan.get("failed_inputs", []))
            and strings(plan.get("outputs", [])) and isinstance(plan.get("shard"), (str, type(None)))
            and isinstance(plan.get("tables"), (str, type(None))))
