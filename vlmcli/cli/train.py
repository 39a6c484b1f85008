"""`vlmcli finetune`, `vlmcli eval`, `vlmcli export`: thin Typer commands over `vlmcli.finetune` (imported lazily).

The only module of the CLI that imports `vlmcli.finetune` (import-linter keeps it so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vlmcli.cli.console import RichProgress, print_note
from vlmcli.cli.exits import reporting_errors
from vlmcli.cli.options import (
    AdapterOpt,
    DeviceOpt,
    DTypeOpt,
    FamilyOpt,
    LongestEdgeOpt,
    MaxNewTokensOpt,
    OfflineOpt,
    PasswordOpt,
    RevisionOpt,
    SplitOpt,
    field_option,
    number,
    with_options_of,
)
from vlmcli.errors import ExitCode
from vlmcli.finetune.options import FinetuneOptions
from vlmcli.specs import ANSWER_MAX_NEW_TOKENS, SHARE_RANGE, Device, DType, ModelSpec, RunSpec

# `eval` and `export` take the base model as `finetune` does.
BaseModelOpt, TrainQuantizeOpt = field_option(FinetuneOptions, "model"), field_option(FinetuneOptions, "quantize")
DataOpt = Annotated[Path, typer.Option(
    readable=False, help="JSONL examples (see the README for the three accepted shapes).")]


@with_options_of(FinetuneOptions)
def finetune(options: FinetuneOptions) -> None:
    """Fine-tune with the staged LoRA / QLoRA recipe of the Idefics2 paper."""
    with reporting_errors():
        from vlmcli.finetune.request import build_request

        request = build_request(options)
        if options.show_config:
            from vlmcli.finetune.shown import shown

            typer.echo(shown(request.for_family(), options.show_format), nl=False)
            return
        request.check_runnable()
        from vlmcli.finetune.train import is_main_process, run

        with RichProgress() as progress:
            summary = run(request, progress)
        if is_main_process():  # under a launcher every rank runs this command; one summary is enough
            typer.echo(summary.to_json())


def evaluate(
    data: DataOpt,
    adapter: AdapterOpt = None, model: BaseModelOpt = None, family: FamilyOpt = None, revision: RevisionOpt = None,
    quantize: TrainQuantizeOpt = None, dtype: DTypeOpt = DType.auto, device: DeviceOpt = Device.auto,
    offline: OfflineOpt = False, max_new_tokens: MaxNewTokensOpt = None, split: SplitOpt = None,
    longest_edge: LongestEdgeOpt = None, password: PasswordOpt = None,
    allow_failures: Annotated[float, typer.Option(
        "--allow-failures", **number(SHARE_RANGE, float),
        help="Share of the examples that may fail (an image that does not open, a page past the end) with exit 0; "
             "past it eval exits 10, or with the error's own code when every example failed.")] = 0.0,
) -> None:
    """Score a model (and adapter) on JSONL data: CER/WER for transcriptions, exact match and ANLS for answers."""
    with reporting_errors():
        from vlmcli import model as models
        from vlmcli.finetune.evaluate import evaluate as run_eval
        from vlmcli.finetune.runinfo import base_model_of
        from vlmcli.finetune.train import load_checked_examples

        run = RunSpec.from_options(base=base_model_of(adapter), model=model, family=family, revision=revision,
                                   quantize=quantize,
                                   dtype=dtype, device=device, adapter=adapter, offline=offline,
                                   max_new_tokens=max_new_tokens, default_max_new_tokens=ANSWER_MAX_NEW_TOKENS,
                                   split=split, longest_edge=longest_edge, bands=False, password=password)
        examples = load_checked_examples(data, skip_bad=False)
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
