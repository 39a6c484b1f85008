"""Files that survive a kill: atomic writes, durable renames, content hashes (stdlib only).

Every file vlmcli writes for the user or for a later run (outputs, the resume
manifest, run.json, checkpoint markers) goes through `atomic_write`: readers see
either nothing or the whole file. Temporary files carry `TEMP_MARK` in their
name, so a run that a SIGKILL stopped leaves nothing that a later run cannot sweep.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from vlmcli.errors import OutputError

TEMP_MARK = ".vlmcli-"
_CHUNK_BYTES = 1 << 20
_UMASK = os.umask(0o022)  # read once, at import (single-threaded): written files get the usual permissions
os.umask(_UMASK)


def atomic_write(path: Path, content: str | bytes) -> None:
    """Write `content` (text as UTF-8) to `path` so that readers see either nothing or the whole file, even after
    a power cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix=".tmp", dir=path.parent)
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        os.fchmod(handle, 0o666 & ~_UMASK)  # mkstemp makes files only their owner may read
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def check_writable_folder(folder: Path, option: str = "-o", *, make: bool = True) -> None:
    """Fail before any work if files cannot be written into `folder`: a path that is a file (or /dev/null), a
    folder without write permission, a read-only file system. A missing folder is made (`make`), or else its
    nearest existing parent must let it be made."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is not a folder", hint=f"{option} needs a folder it can write into (made if "
                                                             "missing)")
    try:
        if make or folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.NamedTemporaryFile(dir=folder, prefix=f"{TEMP_MARK}probe-").close()
            return
        parent = next(p for p in folder.absolute().parents if p.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied" if parent.is_dir() else f"{parent} is not a folder")
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write here ({exc.strerror or exc})",
                          hint=f"choose another place for {option}, or fix the folder's permissions") from None


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def remove_stale_temp_files(folder: Path, only_for: set[Path] | None = None) -> int:
    """Delete temporary files that a killed run left in `folder` (recursively); how many.

    With `only_for`, only those of writes to these paths: several processes may share a folder, and the
    others' temporary files are writes in progress.
    """
    stale = [p for p in folder.rglob(f".*{TEMP_MARK}*.tmp")
             if p.is_file() and (only_for is None or _temp_target(p) in only_for)]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _temp_target(temp: Path) -> Path:
    """The file an `atomic_write` temporary file was for: `.NAME.vlmcli-XXXX.tmp` -> NAME beside it."""
    return temp.with_name(temp.name[1:temp.name.rfind(TEMP_MARK)])


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
