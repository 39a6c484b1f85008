"""`vlmcli ocr`: options → specs → one call → results on stdout.

Nothing here imports torch: the pipeline and the job are imported inside the
command bodies, so `--help` and input mistakes stay fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from vlmcli.cli.console import RichProgress, print_error, print_note
from vlmcli.cli.exits import reporting_errors, sigterm_as_interrupt
from vlmcli.cli.options import (
    BatchSizeOpt,
    FailFastOpt,
    FailureReportOpt,
    FirstPassLangOpt,
    FirstPassOpt,
    ForceOpt,
    FormatOpt,
    HandwritingOpt,
    OutputDirOpt,
    PagesOpt,
    PageTimeoutOpt,
    PromptOpt,
    RayActorCpusOpt,
    RayActorGpusOpt,
    RayActorsOpt,
    RayOpt,
    ResumeOpt,
    ShardCountOpt,
    ShardOpt,
    TablesOpt,
    TaskOpt,
    VerboseOpt,
    run_spec,
    with_run_options,
)
from vlmcli.errors import UsageError, VlmcliError
from vlmcli.specs import Engine, FirstPass, FirstPassSpec, OutputFormat


@with_run_options
def ocr(
    inputs: Annotated[list[Path], typer.Argument(readable=False, help="Images, PDFs, or folders of them.")],
    pages: PagesOpt = None, output: OutputDirOpt = None, output_format: FormatOpt = OutputFormat.text,
    prompt: PromptOpt = None, handwriting: HandwritingOpt = False, task: TaskOpt = None,
    resume: ResumeOpt = False, force: ForceOpt = False, page_timeout: PageTimeoutOpt = None,
    fail_fast: FailFastOpt = False,
    failure_report: FailureReportOpt = None, batch_size: BatchSizeOpt = 1, tables: TablesOpt = None,
    shard: ShardOpt = None, shard_count: ShardCountOpt = None, ray: RayOpt = None, ray_actors: RayActorsOpt = None,
    ray_actor_cpus: RayActorCpusOpt = None, ray_actor_gpus: RayActorGpusOpt = None,
    first_pass: FirstPassOpt = FirstPass.auto, first_pass_lang: FirstPassLangOpt = None,
    verbose: VerboseOpt = False, *, run_options: dict[str, Any],
) -> None:
    """Transcribe images and PDFs page by page.  Example: vlmcli ocr scan.pdf --pages 1-3 -o out/"""
    with reporting_errors(resumable=True), RichProgress(verbose) as progress, sigterm_as_interrupt():
        run, family = run_spec(run_options, page_timeout=page_timeout, batch_size=batch_size)
        from vlmcli.jobs import ocr as job

        request = job.OcrRequest(
            inputs=tuple(inputs), instruction=family.instruction(prompt, handwriting, task), run=run, pages=pages,
            output_format=output_format, out_dir=output, resume=resume, force=force, fail_fast=fail_fast,
            failure_report=failure_report, family=family, tables_dir=tables, shard=_shard(shard, shard_count),
            first_pass=FirstPassSpec.from_options(first_pass=first_pass, first_pass_lang=first_pass_lang,
                                                  page_timeout=page_timeout))
        if ray is None:
            summary = job.run_ocr(request, write=_write_stdout, progress=progress, on_failure=_report_failure)
        else:
            from vlmcli.jobs import ray_runner

            spec = ray_runner.RaySpec(address=ray, actors=ray_actors, actor_cpus=ray_actor_cpus,
                                      actor_gpus=ray_actor_gpus)
            on_ray = ray_runner.run_ocr_on_ray if run.engine.kind is Engine.transformers else _engine_on_ray(run)
            summary = on_ray(request, spec, write=_write_stdout, progress=progress, on_failure=_report_failure)
        progress.stop()
    print_note(summary.line())
    raise typer.Exit(int(summary.exit_code))


def _engine_on_ray(run):
    """--ray with another engine: vLLM through Ray Data's LLM processor; a server is its own engine."""
    if run.engine.kind is Engine.server:
        raise UsageError("--ray and --engine server do not go together",
                         hint="the server reads the pages; --concurrency sets how many go at once")
    from vlmcli.jobs.ray_vllm import run_ocr_on_ray_vllm

    return run_ocr_on_ray_vllm


def _shard(option: str | None, shard_count: int | None):
    """--shard K/N, else the job array's environment (said on stderr), else None."""
    from vlmcli.jobs import shards

    if option is not None:
        if shard_count is not None:
            raise UsageError("--shard and --shard-count do not go together", hint="--shard K/N says N already")
        return shards.parse_shard(option)
    found = shards.shard_from_environment(os.environ, shard_count)
    if found is None:
        return None
    shard, variable = found
    print_note(f"shard {shard.index}/{shard.count} (from {variable})")
    return shard


def _report_failure(failure) -> None:
    page = f" (page {failure.page_number})" if failure.page_number else ""
    print_error(VlmcliError(f"{failure.error.message}{page}; skipped", hint=failure.error.hint))


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
