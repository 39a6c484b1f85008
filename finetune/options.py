"""The options of `vlmcli finetune`, defined once (stdlib only).

Each field of `FinetuneOptions` is one option, as `RunOptions` (vlmcli/specs/options.py) holds those of `ask`
and `ocr`: its metadata (`Option`) gives the flags, help text, --help panel and accepted range, and the CLI
builds its Typer options from the fields (cli/options.py `with_options_of`). The model options are RunOptions'
own fields; a stage setting names the `Stage` field it overrides (`setting` in its metadata) and takes its range
from the stages' RANGES, so a flag and a config file accept the same values. `finetune.request` turns the options
into a `FinetuneRequest`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from vlmcli.finetune.stages import LOSS_AVERAGES, RANGES

from vlmcli.specs import DEFAULT_MODEL, MAX_NEW_TOKENS_RANGE, MODEL_ENV_VAR, Device, DType, Option, Quant, Range
from vlmcli.specs.options import RunOptions

STAGE = "Stage settings (override the preset and --config)"


class BadExamplePolicy(str, Enum):
    skip = "skip"
    fail = "fail"


class ShownFormat(str, Enum):
    json = "json"
    toml = "toml"


LossAverage = Enum("LossAverage", [(name, name) for name in LOSS_AVERAGES], type=str)


def _option(default: Any, *flags: str, help: str, panel: str | None = None, **more: Any) -> Any:
    return field(default=default, metadata={"option": Option(tuple(flags), help, panel=panel, **more)})


def _run_option(name: str, setting: str | None = None) -> Any:
    """RunOptions' field `name` (its default, flags and help), here too; `setting`: the Stage field it sets."""
    found = next(item for item in dataclasses.fields(RunOptions) if item.name == name)
    return field(default=found.default, metadata={**found.metadata, "setting": setting})


def _setting(name: str, help: str, *flags: str, setting: str | None = None) -> Any:
    """A stage setting's option: `--NAME` unless `flags` say otherwise, the Stage field `setting` (default `name`),
    its range from RANGES, checked while parsing."""
    setting = setting or name
    option = Option(flags or (f"--{name.replace('_', '-')}",), help, panel=STAGE, accepts=RANGES.get(setting))
    return field(default=None, metadata={"option": option, "setting": setting})


@dataclass(frozen=True)
class FinetuneOptions:
    stage: int = field(metadata={"option": Option(
        ("--stage",), "1: low resolution; 2: high resolution + splitting; 3: instruction tuning on your tasks.",
        panel=None, accepts=Range(1, 3))})
    data: list[str] | None = _option(
        None, "--data", metavar="PATH[:WEIGHT]",
        help="JSONL training examples; repeat for a mixture: PATH, PATH:WEIGHT (its share of the draws) or "
             "PATH:weight=W,split=false,longest_edge_px=N (see the README).")
    output: Path | None = _option(None, "--output", "-o", help="Folder for the adapter, run.json and checkpoints.")
    eval_data: list[str] | None = _option(
        None, "--eval-data", metavar="PATH[:name=N]",
        help="JSONL to evaluate before and after training; repeat for several sets, each reported on its own "
             "(PATH or PATH:name=N,split=false,longest_edge_px=N).")
    eval_max_new_tokens: int | None = _option(
        None, "--eval-max-new-tokens", accepts=MAX_NEW_TOKENS_RANGE,
        help="Most tokens to generate per --eval-data example.")
    from_run: Path | None = _option(None, "--from", help="Start from an earlier stage's --output.")
    config: Path | None = _option(
        None, "--config", help="TOML file of stage settings (top level, \\[stage] as --show-config prints it, or "
                               "\\[stageN]) and \\[\\[data]] sources.")
    resume: bool = _option(
        False, "--resume/--no-resume", help="Continue from the last complete checkpoint in --output.")
    on_bad_example: BadExamplePolicy = _option(
        BadExamplePolicy.fail, "--on-bad-example", help="Skip bad lines (reported) or stop.")
    show_config: bool = _option(
        False, "--show-config/--no-show-config",
        help="Print the resolved settings (stage, model, data) and exit, loading no model.")
    show_format: ShownFormat = _option(
        ShownFormat.json, "--show-format", help="What --show-config prints: JSON, or TOML that --config reads back.")
    model: str | None = _option(
        None, "--model", "-m", envvar=MODEL_ENV_VAR, panel="Model",
        help=f"Base checkpoint (default: the --from run's, else {DEFAULT_MODEL}).")
    family: str | None = _run_option("family")
    revision: str | None = _run_option("revision")
    quantize: Quant | None = _option(
        None, "--quantize", panel="Model",
        help="4bit = QLoRA (NF4, double quantization). Default: the --from run's, else none.")
    dtype: DType = _run_option("dtype")
    device: Device = _run_option("device")
    offline: bool = _run_option("offline")
    trust_remote_code: bool = _run_option("trust_remote_code")
    allow_pickle: bool = _run_option("allow_pickle")
    lora_rank: int | None = _setting("lora_rank", "LoRA rank.")
    lora_alpha: int | None = _setting("lora_alpha", "LoRA alpha.")
    lora_dropout: float | None = _setting("lora_dropout", "LoRA dropout (0 <= x < 1).")
    dora: bool | None = _setting("dora", "DoRA instead of plain LoRA.", "--dora/--no-dora", setting="use_dora")
    learning_rate: float | None = _setting("learning_rate", "Learning rate of the LoRA weights.")
    full_train_learning_rate: float | None = _setting(
        "full_train_learning_rate", "Learning rate of fully trained modules.")
    epochs: float | None = _setting("epochs", "Passes over the data.")
    max_steps: int | None = _setting("max_steps", "Optimizer steps (overrides --epochs; -1: train for the epochs).")
    batch_size: int | None = _setting("batch_size", "Examples per device per step.")
    grad_accum: int | None = _setting("grad_accum", "Gradient accumulation steps.")
    max_length: int | None = _setting("max_length", "Longest example in tokens (never truncated).")
    save_steps: int | None = _setting("save_steps", "Checkpoint every N steps.")
    seed: int | None = _setting("seed", "Random seed.")
    replay: float | None = _setting(
        "replay", "Share of the examples drawn from the --from run's training data, at its resolutions (0: no replay).")
    loss_average: LossAverage | None = _setting(
        "loss_average", "example: every example weighs the same in the loss, so a source's share of the draws is its "
        "share of the gradient; token: every answer token does (transformers' own), so long answers outweigh short "
        "ones; auto (default): example when the stage draws from several sources, replay included, else token.")
    max_minutes: float | None = _setting(
        "max_minutes", "Stop after this many minutes of training and save as at the end (0: no limit).")
    full: bool | None = _setting(
        "full", "Train every weight instead of an adapter (small models, random weights); writes a whole checkpoint.",
        "--full/--lora", setting="full_finetune")
    split: bool | None = _run_option("split", setting="split")
    longest_edge: int | None = _run_option("longest_edge", setting="longest_edge_px")
    password: str | None = _run_option("password")

    def stage_overrides(self) -> dict[str, Any]:
        """The stage settings the flags give, by Stage field (None: not given)."""
        given = {item.metadata["setting"]: getattr(self, item.name) for item in dataclasses.fields(self)
                 if item.metadata.get("setting")}
        return {key: value.value if isinstance(value, Enum) else value for key, value in given.items()}
