"""`vlmcli ocr`: options → specs → one call → results on stdout.

Nothing here imports torch: the pipeline and the job are imported inside the
command bodies, so `--help` and input mistakes stay fast.
"""

from __future__ import annotations

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
    FormatOpt,
    HandwritingOpt,
    OutputDirOpt,
    PagesOpt,
    PageTimeoutOpt,
    PromptOpt,
    ResumeOpt,
    TablesOpt,
    VerboseOpt,
    run_spec,
    with_run_options,
)
from vlmcli.errors import VlmcliError
from vlmcli.specs import OutputFormat


@with_run_options
def ocr(
    inputs: Annotated[list[Path], typer.Argument(help="Images, PDFs, or folders of them.")],
    pages: PagesOpt = None, output: OutputDirOpt = None, output_format: FormatOpt = OutputFormat.text,
    prompt: PromptOpt = None, handwriting: HandwritingOpt = False,
    resume: ResumeOpt = False, page_timeout: PageTimeoutOpt = None, fail_fast: FailFastOpt = False,
    failure_report: FailureReportOpt = None, batch_size: BatchSizeOpt = 1, tables: TablesOpt = None,
    verbose: VerboseOpt = False, *, run_options: dict[str, Any],
) -> None:
    """Transcribe images and PDFs page by page.  Example: vlmcli ocr scan.pdf --pages 1-3 -o out/"""
    from vlmcli.prompts import ocr_instruction

    with reporting_errors(), RichProgress(verbose) as progress, sigterm_as_interrupt():
        run, doctags = run_spec(run_options, page_timeout=page_timeout, batch_size=batch_size)
        from vlmcli.jobs import ocr as job

        request = job.OcrRequest(
            inputs=tuple(inputs), instruction=ocr_instruction(prompt, handwriting, doctags), run=run, pages=pages,
            output_format=output_format, out_dir=output, resume=resume, fail_fast=fail_fast,
            failure_report=failure_report, doctags=doctags, tables_dir=tables)
        summary = job.run_ocr(request, write=_write_stdout, progress=progress, on_failure=_report_failure)
        progress.stop()
    print_note(summary.line())
    raise typer.Exit(int(summary.exit_code))


def _report_failure(failure) -> None:
    page = f" (page {failure.page_number})" if failure.page_number else ""
    print_error(VlmcliError(f"{failure.error.message}{page}; skipped", hint=failure.error.hint))


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
