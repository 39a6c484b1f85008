"""The model: loading a checkpoint (loading, weights, adapters, processor) and generating from it (generate,
padding, repetition); levers/ holds the measured speed and memory levers beside transformers' plain path.

Importing this package is cheap: torch and transformers load with the first `load`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vlmcli.specs import ModelSpec, SplitSpec

if TYPE_CHECKING:
    from vlmcli.model.loading import LoadedModel
    from vlmcli.model.runtime import Resolved


def load(spec: ModelSpec, split: SplitSpec, *, for_training: bool = False,
         unquantized_modules: tuple[str, ...] = (), skip_levers: frozenset[str] | None = None) -> LoadedModel:
    """Load the checkpoint `spec` names, with its processor set to `split` (the first point where torch is imported).

    With `--offline`, the environment that huggingface_hub reads when it is imported is set first.
    `skip_levers` overrides `VLMCLI_SKIP_LEVERS` (levers/registry.py).
    """
    _offline_environment(spec)
    from vlmcli.model.loading import load_model

    return load_model(spec, split, for_training=for_training, unquantized_modules=unquantized_modules,
                      skip_levers=skip_levers)


def resolve(spec: ModelSpec, *, skip_levers: frozenset[str] | None = None) -> Resolved:
    """The device, dtype and levers `load(spec, ...)` will use, without loading it (model/runtime.py)."""
    _offline_environment(spec)
    from vlmcli.model.runtime import resolve as resolve_spec

    return resolve_spec(spec, skip=skip_levers)


def _offline_environment(spec: ModelSpec) -> None:
    if spec.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
