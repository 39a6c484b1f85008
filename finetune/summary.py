"""What a training run reports: `finetune.train.run` returns it, `vlmcli finetune` prints it as JSON, and run.json
holds it beside the request's settings (finetune/runinfo.py) (stdlib only).

The mixture is recorded as trained: each source's share of the draws, its examples, and the resolution it was
read at, which a later stage's replay reads it at again (finetune/mixture.py `earlier_mixture`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from vlmcli.finetune.mixture import Source

Metrics = dict[str, float]  # an evaluation set's overall scores (finetune/evaluate.py): cer, wer, anls, ...


@dataclass(frozen=True)
class SourceReport:
    """A training source as trained; `split` and `longest_edge_px` are the resolution it was read at."""

    path: str
    weight: float | None  # as given (None: by size); a replayed source's: its share of all draws
    split: bool | None
    longest_edge_px: int | None
    replay_of: str | None  # the earlier run whose own training data this was
    share: float  # of the draws
    examples: int

    @classmethod
    def of(cls, source: Source, share: float, examples: int, resolution: dict[str, Any]) -> SourceReport:
        shown = source.as_dict()
        return cls(path=shown["path"], weight=source.weight, split=resolution["split"],
                   longest_edge_px=resolution["longest_edge_px"], replay_of=shown["replay_of"], share=share,
                   examples=examples)


@dataclass(frozen=True)
class EvalSetReport:
    """An evaluation set: its report name, examples and the resolution it was read at."""

    path: str
    name: str
    split: bool | None
    longest_edge_px: int | None
    examples: int

    @classmethod
    def of(cls, source: Source, name: str, examples: int, resolution: dict[str, Any]) -> EvalSetReport:
        return cls(path=source.as_dict()["path"], name=name, split=resolution["split"],
                   longest_edge_px=resolution["longest_edge_px"], examples=examples)


@dataclass(frozen=True)
class TrainingSummary:
    """A stage's run: what it trained on, what it trained, and how it went (None: not known yet)."""

    examples: int
    eval_examples: int
    data: tuple[SourceReport, ...]
    draws_per_epoch: int
    eval_data: tuple[EvalSetReport, ...]
    loss_average: str  # "example" or "token", as the stage's "auto" resolved
    trainable_parameters: int | None = None
    all_parameters: int | None = None
    global_step: int | None = None
    train_loss: float | None = None
    eval_before: dict[str, Metrics] | None = None  # by set name; only with --eval-data
    eval_after: dict[str, Metrics] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data, as printed and as run.json holds it; what is not known yet is left out."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), default=str)
