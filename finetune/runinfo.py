"""run.json: the resolved settings of a training run, written next to its adapter (stdlib only).

The next stage reads it (`--from`): the base model, its revision and quantization,
the earlier adapter it builds on, and the data mixture it replays (finetune/mixture.py).
Inference reads the fields listed in vlmcli/model/adapters.py, which names the file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from vlmcli.finetune.stages import Stage
from vlmcli.finetune.summary import TrainingSummary

from vlmcli import __version__
from vlmcli.errors import CheckpointError, UsageError, first_line
from vlmcli.files import atomic_write
from vlmcli.model.adapters import RUN_FILE
from vlmcli.specs import DType, ModelSpec, Quant

_DAMAGED_HINT = "run that stage again, or start this one without --from"


def write_run_info(output: Path, stage: Stage, spec: ModelSpec, summary: TrainingSummary, status: str) -> None:
    """Write OUTPUT/run.json atomically: the run's stage and model, its summary, and its status ("running", then
    "finished")."""
    info = {
        "vlmcli_version": __version__,
        "stage": dataclasses.asdict(stage),
        "model": {"model_id": spec.model_id, "revision": spec.revision, "quantize": spec.quantize.value,
                  "dtype": spec.dtype.value, "family": spec.family},
        "parent_adapter": str(spec.adapter.resolve()) if spec.adapter else None,
        **summary.as_dict(),  # the mixture ("data": each source's share and resolution), which a later stage replays
        "status": status,
    }
    atomic_write(output / RUN_FILE, json.dumps(info, indent=2, default=str))


def load_run_info(folder: Path) -> dict[str, Any]:
    """The run.json of an earlier stage (for --from), which must have finished."""
    path = folder / RUN_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder}: not a vlmcli training run (no {RUN_FILE})",
                         hint="--from takes the --output folder of an earlier `vlmcli finetune`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot be read ({first_line(exc)})", hint=_DAMAGED_HINT) from None
    model = info.get("model") if isinstance(info, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("model_id"), str):
        raise CheckpointError(f"{path}: damaged (no base model recorded)", hint=_DAMAGED_HINT)
    saved = "config.json" if info.get("stage", {}).get("full_finetune") else "adapter_config.json"
    if info.get("status") != "finished" or not (folder / saved).is_file():
        raise UsageError(f"{folder}: that training run did not finish",
                         hint=f"finish it with: vlmcli finetune --resume --output {folder} ...")
    return info


def model_spec_from_run(info: dict[str, Any], folder: Path) -> ModelSpec:
    """The base model of an earlier run, with its adapter as this stage's starting point.

    A fully fine-tuned run is itself the next stage's base model.
    """
    model = info["model"]
    family = model.get("family")  # a family named by hand or by an alias goes on with the stages
    if info.get("stage", {}).get("full_finetune"):
        return ModelSpec(model_id=str(folder), dtype=DType(model.get("dtype", "auto")), family=family)
    return ModelSpec(model_id=model["model_id"], revision=model.get("revision"), quantize=Quant(model["quantize"]),
                     dtype=DType(model.get("dtype", "auto")), adapter=folder, family=family)


def base_model_of(adapter: Path | None) -> ModelSpec:
    """The base model an adapter was trained on (from its run.json), or the default model for an adapter that
    PEFT wrote on its own, or for none."""
    if adapter is not None and (adapter / RUN_FILE).is_file():
        return model_spec_from_run(load_run_info(adapter), adapter)
    return ModelSpec()
