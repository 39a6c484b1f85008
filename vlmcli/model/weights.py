"""A checkpoint's weight files: finding them, reading them one tensor at a time, naming the damaged one.

Why not let transformers memory-map the file as it is: a mapped page that has
been read stays in the process's resident set until the whole file is unmapped,
at the end of the load, so converting bf16 weights to float32 holds the whole
file and the new tensors at once. Here each tensor is converted straight from
the mapping (no intermediate copy, which is what made reading with pread slower)
and its pages are then dropped from the resident set (`madvise(MADV_DONTNEED)`;
they stay in the page cache). Quantizing loads, and systems without madvise,
read each tensor with safetensors' pread backend instead. The tensors, names and
conversions are transformers' own (tests/test_weights.py).
"""

from __future__ import annotations

import json
import math
import mmap
import struct
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


# safetensors' dtype names -> torch's, for the dtypes a checkpoint's weights come in
TORCH_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
HEADER_LENGTH_BYTES = 8


def lazy_state_dict(files: list[Path], stack: ExitStack, upcast_to: Any = None) -> dict[str, Any]:
    """Name -> an object that reads its tensor when transformers asks for it (`tensor[...]`); `stack` closes the files.

    `upcast_to` (the load's dtype; None when quantizing): floating tensors stored narrower (bf16 for a float32 load)
    come out in it, converted straight from the mapped file; any other comes out as stored, for transformers to
    convert (a lossless upcast first never changes what its conversion gives).
    """
    state: dict[str, Any] = {}
    for path in files:
        mapped = _mapped_tensors(path, stack, upcast_to) if upcast_to is not None else None
        if mapped is not None:
            state.update(mapped)
            continue
        handle = stack.enter_context(safe_open(str(path), framework="pt", device="cpu", backend="pread"))
        state.update({name: handle.get_slice(name) for name in handle.keys()})
    return state


class MappedTensor:
    """One tensor of a mapped .safetensors file, read once: `[...]` copies it out and drops its pages."""

    def __init__(self, mapped: mmap.mmap, dtype: str, shape: list[int], start: int, end: int, upcast_to: Any) -> None:
        self.mapped, self.dtype, self.shape = mapped, dtype, shape
        self.start, self.end, self.upcast_to = start, end, upcast_to

    def get_dtype(self) -> str:
        return self.dtype

    def get_shape(self) -> list[int]:
        return self.shape

    def __getitem__(self, index: Any) -> Any:
        import torch

        dtype = getattr(torch, TORCH_DTYPES[self.dtype])
        count = math.prod(self.shape)
        if count == 0:
            return torch.empty(self.shape, dtype=dtype)[index]
        view = torch.frombuffer(self.mapped, dtype=dtype, count=count, offset=self.start).reshape(self.shape)
        wider = self.upcast_to is not None and view.is_floating_point() and self.upcast_to.itemsize > dtype.itemsize
        out = view.to(self.upcast_to) if wider else view.clone()
        del view  # the mapping cannot be closed while a tensor points into it
        _drop_pages(self.mapped, self.start, self.end)
        return out[index]


def _mapped_tensors(path: Path, stack: ExitStack, upcast_to: Any) -> dict[str, MappedTensor] | None:
    """The tensors of one .safetensors file, mapped copy-on-write (never written, so never copied); None where
    pread reads it instead: a system without madvise, a dtype this reader does not know (float8)."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return None
    with path.open("rb") as file:
        try:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        except ValueError as exc:  # an empty file
            raise corrupt_weights(path.parent, exc) from None
    stack.callback(_close, mapped)
    try:
        (header_bytes,) = struct.unpack("<Q", mapped[:HEADER_LENGTH_BYTES])
        if HEADER_LENGTH_BYTES + header_bytes > len(mapped):
            raise ValueError(f"the header's {header_bytes} bytes run past the file's end")
        header = json.loads(mapped[HEADER_LENGTH_BYTES:HEADER_LENGTH_BYTES + header_bytes])
        data_start = HEADER_LENGTH_BYTES + header_bytes
        header.pop("__metadata__", None)
        tensors = {name: MappedTensor(mapped, entry["dtype"], list(entry["shape"]),
                                      data_start + entry["data_offsets"][0], data_start + entry["data_offsets"][1],
                                      upcast_to)
                   for name, entry in header.items()}
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise corrupt_weights(path.parent, exc) from None
    if any(t.dtype not in TORCH_DTYPES for t in tensors.values()):
        return None
    import torch

    bad = [name for name, t in tensors.items() if t.end > len(mapped)
           or t.end - t.start != math.prod(t.shape) * getattr(torch, TORCH_DTYPES[t.dtype]).itemsize]
    if bad:
        raise corrupt_weights(path.parent, ValueError(f"tensor {bad[0]} lies outside the file or has another size"))
    return tensors


def _drop_pages(mapped: mmap.mmap, start: int, end: int) -> None:
    """Drop the whole pages of [start, end) from the resident set; a later read would fetch them again."""
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    last = end // mmap.PAGESIZE * mmap.PAGESIZE
    if last > first:
        mapped.madvise(mmap.MADV_DONTNEED, first, last - first)


def _close(mapped: mmap.mmap) -> None:
    try:
        mapped.close()
    except BufferError:  # a tensor still points into it (a load that failed half-way): the collector unmaps it
        pass


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
