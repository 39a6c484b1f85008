"""Stage presets and the merge of overrides (stdlib only).

A stage is data: which modules get LoRA, which train fully, which stay frozen,
and the optimisation and resolution settings. Precedence, lowest first:
preset < --config TOML file < command-line flags.

Sources: Idefics2 paper (arXiv 2405.02246) §3.2/§4.1-4.2: LoRA on the
pretrained backbones and full training of the newly initialised connector
(the paper's stabilising fix), stage 1 at low resolution without splitting,
stage 2 at high resolution adding documents, instruction tuning with DoRA and
the loss on answers only; HF M4's SmolVLM pretraining config (DoRA r=64,
alpha=16, dropout 0.1, lr 1e-4); the smol-vision SmolVLM/Idefics3 fine-tuning
recipe (r=8, alpha=8, dropout 0.1, DoRA except under QLoRA, lr 1e-4).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from vlmcli.errors import UsageError
from vlmcli.model.families import Family
from vlmcli.specs import LONGEST_EDGE_RANGE, Range


@dataclass(frozen=True)
class Stage:
    number: int
    description: str
    lora_on_vision: bool  # LoRA on the vision tower too (where the family names it), not only the language model
    lora_rank: int
    lora_alpha: int
    lora_dropout: float
    use_dora: bool
    learning_rate: float  # LoRA parameters
    full_train_learning_rate: float  # the fully trained modules
    split: bool  # the processor's image splitting
    longest_edge_px: int | None  # None: the checkpoint's own resolution
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 1
    grad_accum: int = 4
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    max_length: int = 4096  # longer examples are reported, never truncated (image tokens must stay whole)
    save_steps: int = 50
    logging_steps: int = 5
    seed: int = 0
    gradient_checkpointing: bool = True
    # Processes that load and preprocess images ahead of the step. 0 on a CPU, where they
    # would take cores from the model; on a GPU with a small model the processor is the bottleneck.
    dataloader_workers: int = 0
    max_minutes: float = 0.0  # > 0: stop after this much training time, then save as at the end (one process only)
    # Train every weight, no adapter; the output is a whole checkpoint. For small models,
    # or weights that start random, where a low-rank update of random weights cannot learn.
    full_finetune: bool = False
    # A stage started --from an earlier run draws this share of its examples from that run's
    # mixture (finetune/mixture.py); 0 turns replay off. Half: each stage here changes the
    # task and the resolution at once, a shift stronger than the one for which continual
    # pretraining needed about a quarter (Ibrahim et al. 2024, arXiv 2403.08763); the
    # Idefics2 recipe's stage 2 still drew most of its data from stage 1; and a quarter lost
    # more than a quarter of an earlier skill where half kept most of it (README, "Replay").
    replay: float = 0.5
    # "example": each example's answer tokens averaged, then the examples, so a source's share
    # of the draws is its share of the gradient (finetune/loss.py); "token": transformers' own
    # average over every answer token of the batch, where long answers outweigh short ones;
    # "auto": "example" when the stage draws from several sources (replay included), else "token".
    loss_average: str = "auto"
    # Overrides of the family's own (model/families): the regex of modules that get LoRA (everything else
    # pretrained stays frozen), and the modules trained fully (PEFT modules_to_save; the family's connector).
    lora_targets: str | None = None
    full_train: tuple[str, ...] | None = None

    def for_family(self, family: Family) -> Stage:
        """The stage with the family's LoRA targets and connector where it sets none of its own."""
        return replace(self, lora_targets=self.lora_targets or family.lora.regex(self.lora_on_vision),
                       full_train=self.full_train if self.full_train is not None else family.lora.connector)


STAGE_1 = Stage(
    number=1, description="alignment at low resolution: one image per page, no splitting",
    lora_on_vision=True,
    lora_rank=64, lora_alpha=16, lora_dropout=0.1, use_dora=True,
    learning_rate=1e-4, full_train_learning_rate=1e-4, split=False, longest_edge_px=None,
)
STAGE_2 = replace(
    STAGE_1, number=2, description="high resolution with image splitting: documents and PDF pages", split=True,
)
STAGE_3 = replace(
    STAGE_1, number=3, description="instruction tuning on your tasks, loss on the answers only",
    lora_on_vision=False, lora_rank=8, lora_alpha=8, full_train_learning_rate=2e-5, split=True,
)
STAGES = {stage.number: stage for stage in (STAGE_1, STAGE_2, STAGE_3)}
LOSS_AVERAGES = ("auto", "example", "token")
# What each numeric setting accepts, from a flag or a config file alike: a value outside would train nothing
# (epochs below 0), diverge at once (an infinite learning rate) or fail deep inside torch (a dropout of 2).
RANGES = {
    "lora_rank": Range(1, 4096), "lora_alpha": Range(1, 1 << 16), "lora_dropout": Range(0, 1, high_open=True),
    "learning_rate": Range(0, 1, low_open=True), "full_train_learning_rate": Range(0, 1, low_open=True),
    "epochs": Range(0, 100_000, low_open=True), "max_steps": Range(-1, 100_000_000),
    "batch_size": Range(1, 4096), "grad_accum": Range(1, 1 << 16), "warmup_ratio": Range(0, 1),
    "weight_decay": Range(0, 1), "max_length": Range(16, 1 << 20), "save_steps": Range(1, 100_000_000),
    "logging_steps": Range(1, 100_000_000), "seed": Range(0, 2**32 - 1), "dataloader_workers": Range(0, 256),
    "max_minutes": Range(0, 1_000_000), "replay": Range(0, 1, high_open=True), "longest_edge_px": LONGEST_EDGE_RANGE,
}
FIELD_NAMES = {f.name for f in fields(Stage)} - {"number", "description"}


def resolve(number: int, file_overrides: dict[str, Any] | None = None,
            cli_overrides: dict[str, Any] | None = None) -> Stage:
    """The preset of stage `number`, then the config file's values, then the command line's (None = not given)."""
    if number not in STAGES:
        raise UsageError(f"--stage must be one of {sorted(STAGES)}, not {number}")
    stage = STAGES[number]
    for source, overrides in (("config file", file_overrides or {}), ("command line", cli_overrides or {})):
        given = {key: value for key, value in overrides.items() if value is not None}
        unknown = sorted(set(given) - FIELD_NAMES)
        if unknown:
            raise UsageError(f"{source}: unknown setting(s) {', '.join(unknown)}",
                             hint=f"known settings: {', '.join(sorted(FIELD_NAMES))}")
        stage = replace(stage, **{key: _coerce(stage, key, value, source) for key, value in given.items()})
    if stage.loss_average not in LOSS_AVERAGES:
        raise UsageError(f"loss_average = {stage.loss_average!r} must be one of {', '.join(LOSS_AVERAGES)}")
    _check_ranges(stage)
    return stage


def _check_ranges(stage: Stage) -> None:
    for key, accepted in RANGES.items():
        value = getattr(stage, key)
        if value is not None:
            accepted.check(key, value)
    if stage.max_steps == 0:
        raise UsageError("max_steps = 0 would train nothing", hint="-1 trains for the epochs; or give 1 or more")


def load_config(path: Path, number: int) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys, then a [stage] table as `--show-config` prints it (it must be
    this stage's), then a [stage2]-style table for this stage."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text, so not a TOML file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    tables = {key for key, value in data.items() if isinstance(value, dict)}
    merged = {key: value for key, value in data.items() if key not in tables}
    merged.update(_shown_stage(data.get("stage"), number, path))
    merged.update(data.get(f"stage{number}", {}))
    return merged


def _shown_stage(table: dict[str, Any] | None, number: int, path: Path) -> dict[str, Any]:
    """The settings of a [stage] table (`--show-config`'s): every setting of the stage `number` it names."""
    if not isinstance(table, dict):
        return {}
    shown = table.get("number", number)
    if shown != number:
        raise UsageError(f"{path}: [stage] holds stage {shown}'s settings, not stage {number}'s",
                         hint=f"run it with --stage {shown}, or name the table [stage{number}]")
    return {key: value for key, value in table.items() if key not in ("number", "description")}


def _coerce(stage: Stage, key: str, value: Any, source: str) -> Any:
    """Check a value against the preset's type (TOML and flags give ints where floats are meant)."""
    current = getattr(stage, key)
    if key == "full_train":
        return tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if key == "lora_targets":  # a regex, where the preset leaves it to the family (None)
        if not isinstance(value, str) or not value:
            raise UsageError(f"{source}: lora_targets = {value!r} is not a regular expression of module names")
        return value
    if isinstance(current, bool) or isinstance(value, bool):
        ok = isinstance(current, bool) and isinstance(value, bool)
    elif isinstance(current, float):
        ok, value = isinstance(value, (int, float)), float(value) if isinstance(value, (int, float)) else value
    else:
        ok = isinstance(value, type(current)) or (current is None and isinstance(value, int))
    if not ok:
        raise UsageError(f"{source}: {key} = {value!r} is not a {type(current).__name__}")
    return value
