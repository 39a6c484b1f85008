"""Trainer checkpoints that are complete or ignored, ours or refused (safetensors; torch to check pickles).

The Trainer writes `checkpoint-N/` file by file, and a run killed mid-save
leaves a directory that looks like a checkpoint. vlmcli writes a completion
marker listing every file and its size, and which run wrote it, after the
Trainer has finished saving; only marked checkpoints are resumed from, and a
marked one whose files no longer match, or that another run wrote (another
base model, stage or LoRA shape), is refused with the reason.

Trainer checkpoints hold pickle files (optimizer, scheduler, RNG state). Each
one the Trainer will read is first read here with torch's weights-only
unpickler, so a file that carries anything but tensors and plain data is
refused before the model loads. (`training_args.bin` is never read on resume.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from vlmcli.errors import CheckpointError, first_line
from vlmcli.files import atomic_write
from vlmcli.model.weights import is_readable

MARKER = "vlmcli-complete.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


PICKLES_READ_ON_RESUME = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")


def mark_complete(checkpoint: Path, step: int, run: dict | None = None) -> None:
    """Record the checkpoint's files and the run that wrote them; written last, atomically."""
    files = {p.relative_to(checkpoint).as_posix(): p.stat().st_size
             for p in sorted(checkpoint.rglob("*")) if p.is_file() and p.name != MARKER}
    atomic_write(checkpoint / MARKER, json.dumps({"step": step, "files": files, "run": run}, indent=1))


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """All checkpoint-N directories, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def latest_complete(folder: Path, run: dict | None = None) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint (verified against `run` if given), and notes about the incomplete ones skipped."""
    notes = []
    for step, path in checkpoints(folder):
        if not (path / MARKER).is_file():
            notes.append(f"{path.name} was interrupted while saving (no completion marker); skipped")
            continue
        verify(path, run)
        return path, notes
    return None, notes


def verify(checkpoint: Path, run: dict | None = None) -> None:
    """Refuse a marked checkpoint that is damaged, was written by another run, or holds more than data in a pickle."""
    try:
        marker = json.loads((checkpoint / MARKER).read_text())
        files = dict(marker["files"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint}: unreadable completion marker ({exc})") from None
    _check_same_run(checkpoint, marker.get("run"), run)
    for name, size in files.items():
        path = checkpoint / name
        actual = path.stat().st_size if path.is_file() else None
        if actual != size:
            state = "is missing" if actual is None else f"has {actual} bytes, {size} were written"
            raise CheckpointError(f"{checkpoint}: {name} {state}; the checkpoint is damaged",
                                  hint="delete this checkpoint folder to resume from the one before it")
    for path in checkpoint.glob("*.safetensors"):
        if not is_readable(path):
            raise CheckpointError(f"{path}: not a readable safetensors file",
                                  hint="delete this checkpoint folder to resume from the one before it")
    for pattern in PICKLES_READ_ON_RESUME:
        for path in checkpoint.glob(pattern):
            _check_weights_only(path)


def _check_same_run(checkpoint: Path, written_by: dict | None, run: dict | None) -> None:
    if run is None or written_by is None:
        return
    differences = [f"{key} {written_by.get(key)!r} (this run: {value!r})"
                   for key, value in run.items() if written_by.get(key) != value]
    if differences:
        raise CheckpointError(f"{checkpoint}: written by another training run: {'; '.join(differences)}",
                              hint="resume with the settings of that run, or choose another --output")


def _check_weights_only(path: Path) -> None:
    import pickle

    import torch
    from transformers.trainer_pt_utils import safe_globals

    try:
        with safe_globals():  # the numpy types the Trainer's RNG state needs, as the Trainer allows them
            torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: refused by torch's weights-only loading ({first_line(exc)})",
                              hint="a checkpoint pickle that holds code objects can run code; "
                                   "resume only from checkpoints your own runs wrote") from None
