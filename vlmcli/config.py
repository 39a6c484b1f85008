"""Frozen specs built by the CLI and read by the services (stdlib only).

Defaults live here and only here: CLI options default to `None` ("not given")
and the specs fill in the default, so precedence stays checkable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

DEFAULT_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"
MODEL_ENV_VAR = "VLMCLI_MODEL"
SUPPORTED_MODEL_TYPES = ("idefics2", "idefics3", "smolvlm")


class Quant(str, Enum):
    none = "none"
    int8 = "8bit"
    nf4 = "4bit"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class KVCache(str, Enum):
    """How `generate` keeps keys and values: grown each step (dynamic) or preallocated (static)."""

    auto = "auto"  # static on a CPU, dynamic on a GPU (see generate._cache_options)
    static = "static"
    dynamic = "dynamic"


class OutputFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"


@dataclass(frozen=True)
class ModelSpec:
    """Which checkpoint to load and how."""

    model_id: str = DEFAULT_MODEL  # hub id or local directory
    revision: str | None = None
    quantize: Quant = Quant.none
    dtype: DType = DType.auto
    device: Device = Device.auto
    adapter: Path | None = None  # a PEFT LoRA adapter directory
    offline: bool = False
    trust_remote_code: bool = False  # run Python code shipped with the checkpoint (--trust-remote-code)
    allow_pickle: bool = False  # accept .bin weights, read with torch's weights-only unpickler (--allow-pickle)


@dataclass(frozen=True)
class SplitSpec:
    """How a page becomes model input.

    `split` and `longest_edge_px` map onto the processor's own settings
    (None keeps the checkpoint's). `bands` lets vlmcli cut pages larger than
    the model's input into overlapping horizontal bands, top to bottom.
    """

    split: bool | None = None
    longest_edge_px: int | None = None
    bands: bool = True
    band_overlap: float = 0.12  # fraction of a band's height shared with the next band


@dataclass(frozen=True)
class GenerationSpec:
    """Decoding settings: greedy unless told otherwise."""

    max_new_tokens: int = 1024
    min_new_tokens: int = 0  # benchmarks force equal lengths with min = max; users leave it at 0
    repetition_min_tokens: int = 64  # a loop must cover this many tokens to stop generation
    repetition_min_repeats: int = 4  # ...and repeat its unit at least this often
    repetition_penalty: float = 1.0  # 1.0 = off; a looping page is retried once with LOOP_RETRY_PENALTY
    max_time_s: float | None = None  # wall-clock cap of one generate call (what is left of --page-timeout)
    kv_cache: KVCache = KVCache.auto


# A looping page is decoded once more with this penalty: greedy still (so a resumed
# run repeats it exactly), but a repeated unit becomes less likely than the way out.
LOOP_RETRY_PENALTY = 1.3


@dataclass(frozen=True)
class PdfSpec:
    """How PDFs are opened."""

    password: str | None = None
    timeout_s: float = 120  # per poppler call (--page-timeout sets it); a hung rasterizer must not hang the run
