"""`vlmcli finetune`, `vlmcli eval`, `vlmcli export`: thin Typer commands over `vlmcli.finetune` (imported lazily).

The only module of the CLI that imports `vlmcli.finetune` (import-linter keeps it so).
"""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmcli.cli.console import RichProgress, print_note
from vlmcli.cli.exits import reporting_errors
from vlmcli.cli.options import (
    AdapterOpt,
    AllowPickleOpt,
    DeviceOpt,
    DTypeOpt,
    FamilyOpt,
    LongestEdgeOpt,
    MaxNewTokensOpt,
    OfflineOpt,
    PasswordOpt,
    RevisionOpt,
    SplitOpt,
    TrustRemoteCodeOpt,
    number,
)
from vlmcli.errors import ExitCode, UsageError
from vlmcli.specs import (
    ANSWER_MAX_NEW_TOKENS,
    DEFAULT_MODEL,
    MODEL_ENV_VAR,
    MAX_NEW_TOKENS_RANGE,
    SHARE_RANGE,
    TRAINING_EVAL_MAX_NEW_TOKENS,
    Device,
    DType,
    ModelSpec,
    PdfSpec,
    Quant,
    RunSpec,
)

STAGE = "Stage settings (override the preset and --config)"


class BadExamplePolicy(str, Enum):
    skip = "skip"
    fail = "fail"


class LossAverage(str, Enum):
    auto = "auto"
    example = "example"
    token = "token"


BaseModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", envvar=MODEL_ENV_VAR, rich_help_panel="Model",
    help=f"Base checkpoint (default: the --from run's, else {DEFAULT_MODEL}).")]
TrainQuantizeOpt = Annotated[Optional[Quant], typer.Option(
    rich_help_panel="Model", help="4bit = QLoRA (NF4, double quantization). Default: the --from run's, else none.")]
DataOpt = Annotated[Path, typer.Option(
    readable=False, help="JSONL examples (see the README for the three accepted shapes).")]


def _stage_option(help_text: str, *names: str, key: str | None = None, kind: type = int):
    """A stage setting's option; `key` names its range in the stages' RANGES, checked while parsing."""
    from vlmcli.finetune.stages import RANGES

    checked = {"click_type": number(RANGES[key], kind)} if key else {}
    return typer.Option(*names, rich_help_panel=STAGE, help=help_text, **checked)


def finetune(
    stage: Annotated[int, typer.Option(min=1, max=3, help="1: low resolution; 2: high resolution + splitting; "
                                                           "3: instruction tuning on your tasks.")],
    data: Annotated[Optional[list[str]], typer.Option(
        metavar="PATH[:WEIGHT]",
        help="JSONL training examples; repeat for a mixture: PATH, PATH:WEIGHT (its share of the draws) or "
             "PATH:weight=W,split=false,longest_edge_px=N (see the README).")] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", readable=False, help="Folder for the adapter, run.json and checkpoints.")] = None,
    eval_data: Annotated[Optional[list[str]], typer.Option(
        metavar="PATH[:name=N]",
        help="JSONL to evaluate before and after training; repeat for several sets, each reported on its own "
             "(PATH or PATH:name=N,split=false,longest_edge_px=N).")] = None,
    eval_max_new_tokens: Annotated[Optional[int], typer.Option(
        click_type=number(MAX_NEW_TOKENS_RANGE), help="Most tokens to generate per --eval-data example.")] = None,
    from_run: Annotated[Optional[Path], typer.Option(
        "--from", readable=False, help="Start from an earlier stage's --output.")] = None,
    config: Annotated[Optional[Path], typer.Option(readable=False,
        help="TOML file of stage settings (top level or \\[stageN]) and \\[\\[data]] sources.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last complete checkpoint in --output.")] = False,
    on_bad_example: Annotated[BadExamplePolicy, typer.Option(help="Skip bad lines (reported) or stop.")] =
    BadExamplePolicy.fail,
    show_config: Annotated[bool, typer.Option(help="Print the resolved settings and exit.")] = False,
    model: BaseModelOpt = None, family: FamilyOpt = None, revision: RevisionOpt = None,
    quantize: TrainQuantizeOpt = None, dtype: DTypeOpt = DType.auto, device: DeviceOpt = Device.auto,
    offline: OfflineOpt = False, trust_remote_code: TrustRemoteCodeOpt = False, allow_pickle: AllowPickleOpt = False,
    lora_rank: Annotated[Optional[int], _stage_option("LoRA rank.", key="lora_rank")] = None,
    lora_alpha: Annotated[Optional[int], _stage_option("LoRA alpha.", key="lora_alpha")] = None,
    lora_dropout: Annotated[Optional[float], _stage_option(
        "LoRA dropout (0 <= x < 1).", key="lora_dropout", kind=float)] = None,
    dora: Annotated[Optional[bool], _stage_option("DoRA instead of plain LoRA.", "--dora/--no-dora")] = None,
    learning_rate: Annotated[Optional[float], _stage_option(
        "Learning rate of the LoRA weights.", key="learning_rate", kind=float)] = None,
    full_train_learning_rate: Annotated[Optional[float], _stage_option(
        "Learning rate of fully trained modules.", key="full_train_learning_rate", kind=float)] = None,
    epochs: Annotated[Optional[float], _stage_option("Passes over the data.", key="epochs", kind=float)] = None,
    max_steps: Annotated[Optional[int], _stage_option(
        "Optimizer steps (overrides --epochs; -1: train for the epochs).", key="max_steps")] = None,
    batch_size: Annotated[Optional[int], _stage_option("Examples per device per step.", key="batch_size")] = None,
    grad_accum: Annotated[Optional[int], _stage_option("Gradient accumulation steps.", key="grad_accum")] = None,
    max_length: Annotated[Optional[int], _stage_option(
        "Longest example in tokens (never truncated).", key="max_length")] = None,
    save_steps: Annotated[Optional[int], _stage_option("Checkpoint every N steps.", key="save_steps")] = None,
    seed: Annotated[Optional[int], _stage_option("Random seed.", key="seed")] = None,
    replay: Annotated[Optional[float], _stage_option(
        "Share of the examples drawn from the --from run's training data, at its resolutions (0: no replay).",
        key="replay", kind=float)] = None,
    loss_average: Annotated[Optional[LossAverage], _stage_option(
        "example: every example weighs the same in the loss, so a source's share of the draws is its share of the "
        "gradient; token: every answer token does (transformers' own), so long answers outweigh short ones; "
        "auto (default): example when the stage draws from several sources, replay included, else token.")] = None,
    max_minutes: Annotated[Optional[float], _stage_option(
        "Stop after this many minutes of training and save as at the end (0: no limit).", key="max_minutes",
        kind=float)] = None,
    full: Annotated[Optional[bool], _stage_option(
        "Train every weight instead of an adapter (small models, random weights); writes a whole checkpoint.",
        "--full/--lora")] = None,
    split: SplitOpt = None, longest_edge: LongestEdgeOpt = None, password: PasswordOpt = None,
) -> None:
    """Fine-tune with the staged LoRA / QLoRA recipe of the Idefics2 paper."""
    overrides = dict(lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=dora,
                     learning_rate=learning_rate, full_train_learning_rate=full_train_learning_rate, epochs=epochs,
                     max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, max_length=max_length,
                     save_steps=save_steps, seed=seed, split=split, longest_edge_px=longest_edge,
                     full_finetune=full, replay=replay, max_minutes=max_minutes,
                     loss_average=loss_average.value if loss_average else None)
    with reporting_errors():
        from vlmcli.finetune import mixture, stages
        from vlmcli.finetune.runinfo import model_spec_from_run, read_run_info

        file_settings = stages.read_config(config, stage) if config else {}
        file_settings, file_data, file_eval = mixture.sources_in_config(file_settings, config)
        resolved = stages.resolve(stage, file_settings, overrides)
        earlier = (from_run, read_run_info(from_run)) if from_run else None
        parent = model_spec_from_run(earlier[1], from_run) if earlier else ModelSpec()
        spec = ModelSpec.from_options(base=parent, model=model, revision=revision, quantize=quantize, dtype=dtype,
                                      device=device, adapter=parent.adapter, offline=offline,
                                      trust_remote_code=trust_remote_code, allow_pickle=allow_pickle, family=family)
        own = [mixture.parse_source(text) for text in data] if data else file_data
        sources = mixture.training_sources(own, resolved.replay, earlier)
        eval_sets = tuple(mixture.parse_source(text, "--eval-data") for text in eval_data) if eval_data else \
            tuple(file_eval)
        if show_config:
            from vlmcli.model.profile import read_profile

            resolved = resolved.for_family(read_profile(spec).family)
            typer.echo(json.dumps({"stage": dataclasses.asdict(resolved), "model": _spec_dict(spec),
                                   "data": [s.as_dict() for s in sources],
                                   "eval_data": [s.as_dict() for s in eval_sets]}, indent=2))
            return
        from vlmcli.finetune.train import FinetuneRequest, is_main_process, run

        if not own or output is None:
            raise UsageError("finetune needs --data and --output", hint="or --show-config to see the settings")
        request = FinetuneRequest(stage=resolved, model=spec, data=sources, output=output, eval_data=eval_sets,
                                  resume=resume, skip_bad_examples=on_bad_example is BadExamplePolicy.skip,
                                  pdf=PdfSpec(password=password),
                                  eval_max_new_tokens=eval_max_new_tokens or TRAINING_EVAL_MAX_NEW_TOKENS)
        with RichProgress() as progress:
            summary = run(request, progress)
        if is_main_process():  # under a launcher every rank runs this command; one summary is enough
            typer.echo(json.dumps(summary, default=str))


def evaluate(
    data: DataOpt,
    adapter: AdapterOpt = None, model: BaseModelOpt = None, family: FamilyOpt = None, revision: RevisionOpt = None,
    quantize: TrainQuantizeOpt = None, dtype: DTypeOpt = DType.auto, device: DeviceOpt = Device.auto,
    offline: OfflineOpt = False, max_new_tokens: MaxNewTokensOpt = None, split: SplitOpt = None,
    longest_edge: LongestEdgeOpt = None, password: PasswordOpt = None,
    allow_failures: Annotated[float, typer.Option(
        "--allow-failures", click_type=number(SHARE_RANGE, float),
        help="Share of the examples that may fail (an image that does not open, a page past the end) with exit 0; "
             "past it eval exits 10, or with the error's own code when every example failed.")] = 0.0,
) -> None:
    """Score a model (and adapter) on JSONL data: CER/WER for transcriptions, exact match and ANLS for answers."""
    with reporting_errors():
        from vlmcli import model as models
        from vlmcli.finetune.evaluate import evaluate as run_eval
        from vlmcli.finetune.runinfo import base_model_of
        from vlmcli.finetune.train import load_examples

        run = RunSpec.from_options(base=base_model_of(adapter), model=model, family=family, revision=revision,
                                   quantize=quantize,
                                   dtype=dtype, device=device, adapter=adapter, offline=offline,
                                   max_new_tokens=max_new_tokens, default_max_new_tokens=ANSWER_MAX_NEW_TOKENS,
                                   split=split, longest_edge=longest_edge, bands=False, password=password)
        examples = load_examples(data, skip_bad=False)
        with RichProgress() as progress:
            progress.loading_model(run.model.model_id)
            loaded = models.load(run.model, run.split)
            progress.model_loaded()
            report = run_eval(loaded, examples, run.pdf, run.generation, progress)
        print_note("eval: " + ", ".join(f"{k}={v:.4g}" for k, v in report.overall.items()))
        typer.echo(json.dumps({"overall": report.overall, "examples": report.examples}, ensure_ascii=False))
    failed = [row for row in report.examples if "error" in row]
    if len(failed) > allow_failures * len(report.examples):
        code = failed[0]["exit_code"] if len(failed) == len(report.examples) else int(ExitCode.partial)
        print_note(f"{len(failed)} of {len(report.examples)} examples failed (first: line {failed[0]['line']}, "
                   f"{failed[0]['error']}); --allow-failures sets the share that may")
        raise typer.Exit(code)


def export(
    adapter: Annotated[Path, typer.Option(readable=False, help="The adapter folder written by `vlmcli finetune`.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", readable=False, help="New folder for the merged checkpoint.")],
    model: BaseModelOpt = None, dtype: DTypeOpt = DType.auto, offline: OfflineOpt = False,
) -> None:
    """Merge an adapter into a standalone checkpoint (with processor and chat template) and smoke-test it."""
    with reporting_errors():
        from vlmcli.finetune.export import export as run_export

        base = ModelSpec(model_id=model, offline=offline) if model else None
        report = run_export(adapter, output, base=base, dtype=dtype)
        print_note(f"exported to {output}; it loads and answers (smoke test: {report['smoke_test_tokens']} tokens)")
        typer.echo(json.dumps(report))


def _spec_dict(spec: ModelSpec) -> dict:
    return {"model_id": spec.model_id, "revision": spec.revision, "quantize": spec.quantize.value,
            "dtype": spec.dtype.value, "device": spec.device.value, "family": spec.family,
            "from_adapter": str(spec.adapter) if spec.adapter else None}
