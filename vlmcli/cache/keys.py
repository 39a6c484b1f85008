"""The settings that decide a page's text, and their fingerprint (stdlib only).

The resume manifest (jobs/manifest.py) and the page cache (store.py) key a page
by its file's content hash, its index, and this fingerprint: change the model,
revision, adapter, prompt, resolution or decoding and the page is read again.
Settings added since manifests were first written appear only when they differ
from the value those manifests were written with, so old fingerprints still match.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from vlmcli.files import file_sha256
from vlmcli.specs import DecodeDType, Engine, GenerationSpec, KVCache, RunSpec

# The renderer that read every PDF before the renderer could differ; runs that use it keep the old fingerprints.
ORIGINAL_RENDERER = "poppler"


def run_settings(run: RunSpec, instruction: str, renderer: str = ORIGINAL_RENDERER) -> dict:
    """Everything besides the input and page that decides a page's text."""
    model_id = run.model.model_id
    return {
        "model": model_id, "model_files": _folder_stamp(Path(model_id)), "revision": run.model.revision,
        "adapter": _folder_digest(run.model.adapter), "quantize": run.model.quantize.value,
        "dtype": run.model.dtype.value, "prompt": instruction, "split": dataclasses.asdict(run.split),
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


def image_settings(run: RunSpec, renderer: str) -> dict:
    """What decides a page's encoded image features: the weights, their precision, the device, the pixels."""
    model_id = run.model.model_id
    return {"model": model_id, "model_files": _folder_stamp(Path(model_id)), "revision": run.model.revision,
            "adapter": _folder_digest(run.model.adapter), "quantize": run.model.quantize.value,
            "dtype": run.model.dtype.value, "device": run.model.device.value, "split": dataclasses.asdict(run.split),
            "pdf_renderer": renderer}
