"""PEFT adapters on a loaded model: the chain of training stages, their resolution, merging (peft).

`vlmcli finetune` writes `run.json` next to each adapter (finetune/runinfo.py);
inference reads three things from it, and only here: the earlier stage the
adapter was trained on top of (`parent_adapter`), and the stage's `split` and
`longest_edge_px`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from vlmcli.errors import InputError, ModelError, RefusedError
from vlmcli.model import weights
from vlmcli.specs import SplitSpec

RUN_FILE = "run.json"
SAFETENSORS_WEIGHTS, PICKLE_WEIGHTS = "adapter_model.safetensors", "adapter_model.bin"  # PEFT's names


def adapter_chain(adapter: Path, allow_pickle: bool = False) -> list[Path]:
    """The adapters to apply, oldest first: a stage's adapter names the earlier stage it was trained on top of.

    Each is checked before the model loads: pickle weights only with `allow_pickle` (as for checkpoints), and
    every weight finite (a diverged training run's adapter would make the model answer nothing)."""
    chain: list[Path] = []
    current: Path | None = Path(adapter)
    while current is not None:
        if not (current / "adapter_config.json").is_file():
            raise InputError(f"{current}: not a PEFT adapter directory (no adapter_config.json)",
                             hint="pass the folder written by `vlmcli finetune` or PEFT's save_pretrained")
        if current.resolve() in [p.resolve() for p in chain]:
            raise InputError(f"{adapter}: the chain of earlier stages loops back to {current}")
        _check_weights(current, allow_pickle)
        chain.insert(0, current)
        parent = _run_info(current).get("parent_adapter")
        current = Path(parent) if parent else None
    return chain


def _check_weights(folder: Path, allow_pickle: bool) -> None:
    """Refuse pickle-only adapters unless allowed, and adapters with non-finite weights."""
    safetensors_file, pickle_file = folder / SAFETENSORS_WEIGHTS, folder / PICKLE_WEIGHTS
    if safetensors_file.is_file():
        tensors = weights.load_safetensors(safetensors_file)
    elif pickle_file.is_file():
        if not allow_pickle:
            raise RefusedError(f"{folder}: the adapter's weights are only in pickle format ({PICKLE_WEIGHTS}), "
                               "which can run code", hint="convert it to safetensors, or pass --allow-pickle to load "
                                                          "it with torch's weights-only unpickler")
        tensors = weights.load_pickle_weights(pickle_file)
    else:
        raise InputError(f"{folder}: the adapter has no weights ({SAFETENSORS_WEIGHTS})",
                         hint="pass the folder written by `vlmcli finetune` or PEFT's save_pretrained")
    bad = next((name for name, tensor in tensors.items() if not weights.all_finite(tensor)), None)
    if bad is not None:
        raise ModelError(f"{folder}: the adapter holds non-finite weights ({bad}); its training diverged",
                         hint="train it again with a lower --learning-rate")


def trained_resolution(adapter: Path | None, split: SplitSpec) -> SplitSpec:
    """Unless told otherwise, read pages at the splitting and resolution the adapter was trained with."""
    stage = _run_info(adapter).get("stage", {}) if adapter is not None else {}
    return dataclasses.replace(
        split, split=stage.get("split") if split.split is None else split.split,
        longest_edge_px=split.longest_edge_px or stage.get("longest_edge_px"))


def fully_trained_modules(chain: list[Path]) -> list[str]:
    """Modules the adapters replace whole (PEFT's modules_to_save): they must load unquantized."""
    names: list[str] = []
    for path in chain:
        names.extend(json.loads((path / "adapter_config.json").read_text()).get("modules_to_save") or [])
    return names


def attach(model: Any, chain: list[Path], merge_all: bool) -> Any:
    """The model with the chain's adapters applied in order; merged into the weights where that is exact."""
    from peft import PeftModel

    # A quantized base cannot absorb the last adapter exactly (it would be re-rounded
    # to 4/8 bits), so at inference that one stays a separate LoRA detour.
    quantized = getattr(model, "hf_quantizer", None) is not None
    for index, path in enumerate(chain):
        try:
            model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
        except SafetensorError as exc:
            raise weights.corrupt_weights(path, exc) from None
        if merge_all or index < len(chain) - 1 or not quantized:
            model = model.merge_and_unload()
    return model


def _run_info(folder: Path) -> dict:
    """The adapter's run.json, or {} for an adapter that PEFT wrote on its own."""
    run_file = folder / RUN_FILE
    return json.loads(run_file.read_text()) if run_file.is_file() else {}
