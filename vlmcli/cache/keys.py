"""The settings that decide a page's text, and their fingerprint (stdlib only).

The resume manifest (jobs/manifest.py) and the page cache (store.py) key a page
by its file's content hash, its index, and this fingerprint: change the model,
revision, adapter, prompt, resolution or decoding, or read on a machine that
resolves another device, dtype or set of levers, and the page is read again.
The device, dtype and levers are the resolved ones (model/runtime.py), never
`auto`: fingerprints written before they were recorded (their settings said
`dtype: auto`) match no run any more, so their pages are read once again.
Other settings added since appear only when they differ from the value
manifests were written with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from vlmcli.files import file_sha256
from vlmcli.specs import DecodeDType, Engine, GenerationSpec, KVCache, RunSpec

# The renderer that read every PDF before the renderer could differ; runs that use it keep the old fingerprints.
ORIGINAL_RENDERER = "poppler"


def run_settings(run: RunSpec, instruction: str, resolved: Mapping, renderer: str = ORIGINAL_RENDERER) -> dict:
    """Everything besides the input and page that decides a page's text; `resolved` is the device type, dtype
    and levers the load uses (`model.resolve(...).settings()`)."""
    model_id = run.model.model_id
    return {
        "model": model_id, "model_files": _folder_stamp(Path(model_id)), "revision": run.model.revision,
        "adapter": _folder_digest(run.model.adapter), "quantize": run.model.quantize.value,
        "dtype": resolved["dtype"], "device": resolved["device"], "levers": list(resolved["levers"]),
        "prompt": instruction, "split": dataclasses.asdict(run.split),
        # A family named by hand (or by an alias) reads a page its own way; a recognised one follows from the files.
        **({"family": run.model.family} if run.model.family else {}),
        "generation": _generation_settings(run.generation),
        # Batched rows are padded, a static cache is longer than the text: in bf16 either may change the rounding.
        **({"batch_size": run.batch_size} if run.batch_size > 1 else {}),
        **({"decode_dtype": run.model.decode_dtype.value} if run.model.decode_dtype is not DecodeDType.same else {}),
        **({"kv_cache": run.generation.kv_cache.value} if run.generation.kv_cache is not KVCache.auto else {}),
        # Two renderers draw the same page with slightly different pixels.
        **({"pdf_renderer": renderer} if renderer != ORIGINAL_RENDERER else {}),
        # Another engine runs other code (and, for a server, weights this run cannot see): its pages are its own.
        **({"engine": run.engine.kind.value} if run.engine.kind is not Engine.transformers else {}),
    }


def settings_fingerprint(settings: dict) -> str:
    """A short stable hash of the run settings that decide a page's text (any JSON-able dict)."""
    canonical = json.dumps(settings, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _generation_settings(spec) -> dict:
    # Keys added to GenerationSpec since manifests were first written are listed apart, so old keys still match.
    settings = dataclasses.asdict(dataclasses.replace(spec, max_time_s=None))
    del settings["kv_cache"]
    for name in _LATER_GENERATION_FIELDS:
        if settings[name] == getattr(_DEFAULT_GENERATION, name):
            del settings[name]
    return settings


_DEFAULT_GENERATION = GenerationSpec()
_LATER_GENERATION_FIELDS = ("temperature", "top_p", "stop")


def _folder_stamp(folder: Path) -> list | None:
    """Names, sizes and modification times of a local checkpoint's files (hashing GBs of weights per run is too slow)."""
    if not folder.is_dir():
        return None
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())


def _folder_digest(folder: Path | None) -> list | None:
    """Content hashes of an adapter's files (adapters are small, and retraining keeps their sizes)."""
    if folder is None or not folder.is_dir():
        return None
    return sorted((p.name, file_sha256(p)) for p in folder.iterdir() if p.is_file())


def image_settings(run: RunSpec, renderer: str, resolved: Mapping) -> dict:
    """What decides a page's encoded image features: the weights, their precision, the device, the levers that
    change pixels or the vision tower (`model.resolve(...).settings(IMAGE_PARTS)`), the pixels."""
    model_id = run.model.model_id
    return {"model": model_id, "model_files": _folder_stamp(Path(model_id)), "revision": run.model.revision,
            "adapter": _folder_digest(run.model.adapter), "quantize": run.model.quantize.value,
            "dtype": resolved["dtype"], "device": resolved["device"], "levers": list(resolved["levers"]),
            "split": dataclasses.asdict(run.split), "pdf_renderer": renderer}


IMAGE_PARTS = frozenset({"pixels", "vision"})  # what the levers in image_settings change (levers/registry.py)


def settings_diff(old: Mapping | None, new: Mapping, limit: int = 3) -> str:
    """What differs between two runs' settings, for a person: `dtype bfloat16 -> float32; levers ...`."""
    if old is None:
        return "settings not recorded: an earlier vlmcli wrote them"
    before, after = _flat(_as_json(old)), _flat(_as_json(new))
    changed = [f"{name} {_shown(before.get(name))} -> {_shown(after.get(name))}"
               if _simple(before.get(name)) and _simple(after.get(name)) else f"{name} changed"
               for name in sorted(before.keys() | after.keys()) if before.get(name) != after.get(name)]
    more = f"; {len(changed) - limit} more" if len(changed) > limit else ""
    return "; ".join(changed[:limit]) + more


def _as_json(settings: Mapping) -> dict:
    """As read back from a manifest (tuples become lists), so that equal settings compare equal."""
    return json.loads(json.dumps(settings, ensure_ascii=True, default=str))


def _flat(settings: Mapping, prefix: str = "") -> dict:
    flat: dict = {}
    for name, value in settings.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def _simple(value) -> bool:
    """A value shown as it is: a scalar, or a list of names (levers); not file lists and digests."""
    return not isinstance(value, (list, tuple)) or all(isinstance(item, str) for item in value)


def _shown(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, (list, tuple)):
        return ",".join(value) or "none"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
