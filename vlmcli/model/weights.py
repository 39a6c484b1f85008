"""A checkpoint's weight files: finding them, reading them one tensor at a time, naming the damaged one.

Why read with pread instead of letting transformers memory-map the file: a
mapped page that has been read stays in the process's resident set until the
whole file is unmapped, at the end of the load, so converting bf16 weights to
float32 (or quantizing them) holds the whole file and the new tensors at once.
Read one tensor at a time, each buffer is converted and dropped (peaks in the
README, from benchmarks/speed.py). transformers itself loads this way on
Windows and MPS; the tensors, names and conversions are the same (tested).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from huggingface_hub import try_to_load_from_cache
from safetensors import SafetensorError, safe_open

from vlmcli.errors import ModelError, RefusedError, first_line
from vlmcli.specs import ModelSpec

SINGLE_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"


def safetensors_files(spec: ModelSpec) -> list[Path] | None:
    """The checkpoint's .safetensors files if they are all on disk already (a folder, or the hub cache), else None.

    None leaves finding (and downloading) them to transformers, as before.
    """
    single = file_on_disk(spec, SINGLE_FILE)
    if single is not None:
        return [single]
    index = file_on_disk(spec, SHARD_INDEX)
    if index is None:
        return None
    shard_names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    shards = [file_on_disk(spec, name) for name in shard_names]
    return None if any(shard is None for shard in shards) else shards  # type: ignore[return-value]


def lazy_state_dict(files: list[Path], stack: ExitStack) -> dict[str, Any]:
    """Name -> a slice that reads its tensor from disk when transformers asks for it; `stack` closes the files."""
    state: dict[str, Any] = {}
    for path in files:
        handle = stack.enter_context(safe_open(str(path), framework="pt", device="cpu", backend="pread"))
        state.update({name: handle.get_slice(name) for name in handle.keys()})
    return state


def corrupt_weights(folder: Path, exc: Exception) -> ModelError:
    """Name the damaged .safetensors file (truncated download, disk full while saving)."""
    damaged = next((p for p in sorted(folder.glob("*.safetensors")) if not is_readable(p)), None)
    where = damaged if damaged is not None else folder
    return ModelError(f"{where}: corrupt weights ({first_line(exc)})",
                      hint="download or save the checkpoint again; the file is truncated or damaged")


def has_only_pickle_weights(model_id: str) -> bool:
    folder = Path(model_id)
    return folder.is_dir() and not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin"))


def load_safetensors(path: Path) -> dict[str, Any]:
    """Every tensor of a .safetensors file (a damaged file is a ModelError naming it)."""
    import safetensors.torch

    try:
        return safetensors.torch.load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise corrupt_weights(path.parent, exc) from None


def load_pickle_weights(path: Path) -> dict[str, Any]:
    """Tensors from a pickle file, through torch's weights-only unpickler: a pickle that holds more than tensors
    (code to run) is refused, never executed."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RefusedError(f"{path}: the pickle holds more than weights, so it was not loaded ({first_line(exc)})",
                           hint="only load pickles you trust; convert them to safetensors") from None
    except (OSError, RuntimeError, EOFError) as exc:
        raise ModelError(f"{path}: corrupt weights ({first_line(exc)})", hint="save or download it again") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: not a file of named tensors")
    return state


def all_finite(tensor: Any) -> bool:
    import torch

    return not torch.is_floating_point(tensor) or bool(torch.isfinite(tensor).all())


def file_on_disk(spec: ModelSpec, filename: str) -> Path | None:
    """One file of the checkpoint if it is on disk already (a local folder, or the hub cache), else None."""
    folder = Path(spec.model_id).expanduser()
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    try:
        cached = try_to_load_from_cache(spec.model_id, filename, revision=spec.revision)
    except ValueError:  # not a valid hub id: transformers will say what is wrong with it
        return None
    return Path(cached) if isinstance(cached, str) else None


def is_readable(path: Path) -> bool:
    """True if a .safetensors file's header and index read (a truncated file fails here)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError):
        return False
    return True
