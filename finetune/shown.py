"""What `vlmcli finetune --show-config` prints: a resolved request as JSON or TOML (tomlkit writes the TOML).

One document in both formats: `stage` (every setting, the family's LoRA targets and connector filled in), `data`
(the mixture, replayed sources included), `eval_data`, `model` and `run`. `--config` reads the TOML back: its
`[stage]`, `[[data]]` and `[[eval_data]]` (finetune/stages.py, finetune/mixture.py); a source with `replay_of` is
the --from run's replay, which --from brings back rather than the file; `[model]` and `[run]` are shown, not read
(they are flags). TOML has no null: a setting that is None (the checkpoint's own resolution, say) is left out,
which reads back as the same None.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from vlmcli.finetune.options import ShownFormat
from vlmcli.finetune.request import FinetuneRequest

from vlmcli.specs import ModelSpec

_TOML_HEADER = ("vlmcli finetune --stage {number}: the resolved settings (preset, then --config, then flags).",
                "--config reads [stage], [[data]] and [[eval_data]] back; a source with replay_of is the --from run's",
                "replay, which --from brings back; [model] and [run] are shown, not read: give them as flags.")


def document(request: FinetuneRequest) -> dict[str, Any]:
    """The request as plain data, the same for JSON and TOML (the PDF password is never shown)."""
    return {
        "stage": dataclasses.asdict(request.stage),
        "data": [source.as_dict() for source in request.data],
        "eval_data": [source.as_dict() for source in request.eval_data],
        "model": model_dict(request.model),
        "run": {"output": str(request.output) if request.output else None, "resume": request.resume,
                "on_bad_example": "skip" if request.skip_bad_examples else "fail",
                "eval_max_new_tokens": request.eval_max_new_tokens},
    }


def model_dict(spec: ModelSpec) -> dict[str, Any]:
    return {"model_id": spec.model_id, "revision": spec.revision, "quantize": spec.quantize.value,
            "dtype": spec.dtype.value, "device": spec.device.value, "family": spec.family,
            "from_adapter": str(spec.adapter) if spec.adapter else None}


def shown(request: FinetuneRequest, fmt: ShownFormat) -> str:
    """The document of `request` in `fmt`."""
    shown_document = document(request)
    if fmt is ShownFormat.json:
        return json.dumps(shown_document, indent=2) + "\n"
    import tomlkit

    toml = tomlkit.document()
    for line in _TOML_HEADER:
        toml.add(tomlkit.comment(line.format(number=request.stage.number)))
    for key, value in shown_document.items():
        toml[key] = _without_none(value)
    return tomlkit.dumps(toml)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_without_none(item) for item in value]
    return value
