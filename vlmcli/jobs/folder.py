"""The output folder of an OCR job, claimed before any work so that a run never overwrites what it should not.

Rules, each checked before the model loads:
- the folder is writable (and is a folder);
- one run, or one shard of a job array, at a time: a lock file per manifest, held while the run lasts and
  released by the operating system however the process ends;
- a run over an existing manifest needs `--resume`, or `--force`, which keeps the old manifest as a backup;
- the folder holds only what vlmcli wrote there (manifests and their backups, lock files, failure reports, and
  the outputs and tables folders that its manifests' plans name), unless `--force`;
- no file the run writes is one of its inputs, and the outputs that manifests name are never read as inputs (an
  output folder inside an input folder would otherwise feed a run's results back in).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from vlmcli.errors import OutputError, UsageError
from vlmcli.files import TEMP_MARK, check_writable_folder
from vlmcli.jobs import manifest

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the other rules still hold
    fcntl = None

LOCK_PREFIX = ".vlmcli-lock"
FORCE_HINT = "pass --resume to continue it, --force to start over (the old manifest is kept as a backup), " \
             "or choose another -o folder"


class OutputFolder:
    """An output folder claimed for one run (or shard): locked, checked, its old manifest set aside if forced."""

    def __init__(self, out_dir: Path, shard_label: str | None, *, resume: bool, force: bool) -> None:
        check_writable_folder(out_dir)
        self.out_dir = out_dir
        self.manifest_path = out_dir / manifest.manifest_name(shard_label)
        self._lock = _take_lock(out_dir / (LOCK_PREFIX if shard_label is None else f"{LOCK_PREFIX}.{shard_label}"))
        try:
            self._check_manifests(shard_label, resume=resume, force=force)
            if not force:
                _refuse_foreign_files(out_dir)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _check_manifests(self, shard_label: str | None, *, resume: bool, force: bool) -> None:
        """Without --resume, a run may not write over a manifest (any manifest, for a run of all shards)."""
        if resume:
            return
        own = self.manifest_path
        existing = [own] if _holds_entries(own) else []
        if shard_label is None:
            existing += [p for p in manifest.manifest_paths(self.out_dir) if p != own and _holds_entries(p)]
        if not existing:
            return
        if not force:
            raise OutputError(f"{self.out_dir}: holds the manifest of an earlier run ({existing[0].name})",
                              hint=FORCE_HINT)
        if own in existing:
            os.replace(own, own.with_name(f"{own.name}.{time.time_ns()}{manifest.BACKUP_SUFFIX}"))


class Recorded:
    """What the plans in an output folder's manifests (and their backups) say vlmcli writes there: output files,
    and tables folders of CSV files."""

    def __init__(self, out_dir: Path) -> None:
        self.files: set[Path] = set()
        self.tables: set[Path] = set()
        for path in [*manifest.manifest_paths(out_dir), *manifest.backup_paths(out_dir)]:
            try:
                entries, _ = manifest.load_entries(path)
            except OSError:
                continue
            for plan in (entry["plan"] for entry in entries if "plan" in entry):
                self.files.update(_resolved(out_dir / name) for name in plan.get("outputs", ()))
                if plan.get("tables"):
                    self.tables.add(_resolved(Path(plan["tables"])))

    def holds(self, path: Path) -> bool:
        path = _resolved(path)
        return path in self.files or (path.suffix == ".csv" and path.parent in self.tables)


def not_outputs(documents: list[Path], given: list[Path], out_dir: Path | None) -> list[Path]:
    """`documents` without vlmcli's outputs found in folders: those that this run's output folder, or any output
    folder inside a folder given, names in its manifests (a file given by name is read as asked)."""
    folders = {path.parent for root in given if root.is_dir() for path in root.rglob(f"{manifest.MANIFEST_GLOB}")}
    if out_dir is not None and out_dir.is_dir():
        folders.add(out_dir)
    recorded = [Recorded(folder) for folder in folders]
    return [path for path in documents if path in given or not any(r.holds(path) for r in recorded)]


def refuse_clobbering(targets: list[Path], documents: list[Path]) -> None:
    """Refuse a run that would write over one of its own inputs (compared by device and inode, so links count)."""
    inputs = {identity: path for path in documents if (identity := _identity(path)) is not None}
    for target in targets:
        identity = _identity(target)
        if identity is not None and identity in inputs:
            raise UsageError(f"{target}: is one of the inputs; writing there would replace it",
                             hint="choose an -o folder (or --failure-report path) apart from the inputs")


def _take_lock(path: Path) -> int | None:
    if fcntl is None:
        return None
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"{path}: cannot be created ({exc.strerror or exc})") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise OutputError(f"{path.parent}: another vlmcli run is writing into this folder",
                          hint="wait for it to finish, or give each run its own -o folder or --shard") from None
    return descriptor


def _holds_entries(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _refuse_foreign_files(out_dir: Path) -> None:
    recorded = Recorded(out_dir)
    for path in sorted(out_dir.rglob("*")):
        if path.is_dir() or _is_bookkeeping(path.name) or recorded.holds(path):
            continue
        raise OutputError(f"{out_dir}: holds files vlmcli did not write, such as {path.relative_to(out_dir)}",
                          hint="choose a new or empty -o folder, or pass --force to write there anyway")


def _is_bookkeeping(name: str) -> bool:
    """Manifests, their backups, locks, failure reports and temporary files: vlmcli's own, by name."""
    return (name.startswith((".vlmcli-manifest", LOCK_PREFIX, "vlmcli-failures")) or TEMP_MARK in name)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return path.absolute()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except (OSError, RuntimeError):
        return None
    return status.st_dev, status.st_ino
