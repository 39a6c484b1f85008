"""Checkpoints that are complete or ignored (stdlib + safetensors).

The Trainer writes `checkpoint-N/` file by file, and a run killed mid-save
leaves a directory that looks like a checkpoint. vlmcli writes a completion
marker listing every file and its size after the Trainer has finished saving;
only marked checkpoints are resumed from, and a marked one whose files no
longer match is refused.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from vlmcli.errors import CheckpointError

MARKER = "vlmcli-complete.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(checkpoint: Path, step: int) -> None:
    """Record the checkpoint's files; written last, atomically."""
    files = {p.relative_to(checkpoint).as_posix(): p.stat().st_size
             for p in sorted(checkpoint.rglob("*")) if p.is_file() and p.name != MARKER}
    temp = checkpoint / f".{MARKER}.tmp"
    temp.write_text(json.dumps({"step": step, "files": files}, indent=1))
    os.replace(temp, checkpoint / MARKER)


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """All checkpoint-N directories, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def latest_complete(folder: Path) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint (verified), and notes about the incomplete ones skipped."""
    notes = []
    for step, path in checkpoints(folder):
        if not (path / MARKER).is_file():
            notes.append(f"{path.name} was interrupted while saving (no completion marker); skipped")
            continue
        verify(path)
        return path, notes
    return None, notes


def verify(checkpoint: Path) -> None:
    """Refuse a marked checkpoint whose files are missing, truncated, or not safetensors where they should be."""
    try:
        marker = json.loads((checkpoint / MARKER).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{checkpoint}: unreadable completion marker ({exc})") from None
    for name, size in marker["files"].items():
        path = checkpoint / name
        actual = path.stat().st_size if path.is_file() else None
        if actual != size:
            state = "is missing" if actual is None else f"has {actual} bytes, {size} were written"
            raise CheckpointError(f"{checkpoint}: {name} {state}; the checkpoint is damaged",
                                  hint="delete this checkpoint folder to resume from the one before it")
    for path in checkpoint.glob("*.safetensors"):
        _check_safetensors(path)


def _check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own Rust-side error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})",
                              hint="delete this checkpoint folder to resume from the one before it") from None
