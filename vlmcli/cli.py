"""The `vlmcli` command line: parse → build frozen specs → one service call → render.

Nothing here imports torch: the services are imported inside the command
bodies, so `--help` and input mistakes stay fast.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmcli import __version__, cli_train
from vlmcli.config import (DEFAULT_MODEL, Device, DType, GenerationSpec, KVCache, ModelSpec, OutputFormat, PdfSpec, Quant,
                           SplitSpec)
from vlmcli.console import RichProgress, print_error, print_note
from vlmcli.errors import ExitCode, Terminated, VlmcliError
from vlmcli.options import (AdapterOpt, AllowPickleOpt, BandsOpt, BatchSizeOpt, DeviceOpt, DTypeOpt, FailFastOpt,
                            FailureReportOpt, FormatOpt, HandwritingOpt, KVCacheOpt, LongestEdgeOpt, MaxNewTokensOpt,
                            ModelOpt, OfflineOpt, OutputDirOpt, PagesOpt, PageTimeoutOpt, PasswordOpt, PromptOpt,
                            QuantizeOpt, ResumeOpt, RevisionOpt, SplitOpt, TrustRemoteCodeOpt, VerboseOpt)

app = typer.Typer(
    name="vlmcli", no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
    help="Read documents with a vision-language model: OCR of print and handwriting, questions about images and PDFs.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vlmcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Read documents with a vision-language model."""


@app.command()
def ask(
    files: Annotated[list[Path], typer.Argument(help="Images or PDFs to look at (several are shown together).")],
    question: Annotated[str, typer.Argument(help="The question, in quotes (always the last argument).")],
    page: Annotated[int, typer.Option(min=1, help="Which page of a PDF to look at (1-based).")] = 1,
    model: ModelOpt = DEFAULT_MODEL, revision: RevisionOpt = None, quantize: QuantizeOpt = Quant.none,
    dtype: DTypeOpt = DType.auto, device: DeviceOpt = Device.auto, adapter: AdapterOpt = None,
    offline: OfflineOpt = False, trust_remote_code: TrustRemoteCodeOpt = False, allow_pickle: AllowPickleOpt = False,
    max_new_tokens: MaxNewTokensOpt = None, kv_cache: KVCacheOpt = KVCache.auto,
    split: SplitOpt = None, longest_edge: LongestEdgeOpt = None, bands: BandsOpt = True,
    password: PasswordOpt = None, verbose: VerboseOpt = False,
) -> None:
    """Answer a question about images or PDF pages.  Example: vlmcli ask invoice.pdf "What is the total?" """
    run = _run_spec(model, revision, quantize, dtype, device, adapter, offline, max_new_tokens,
                    split, longest_edge, bands, password, default_max_new_tokens=512,
                    trust_remote_code=trust_remote_code, allow_pickle=allow_pickle, kv_cache=kv_cache)
    stream = sys.stdout.isatty()
    with reporting_errors(), RichProgress(verbose) as progress:
        from vlmcli import app as service

        def on_text(piece: str) -> None:
            progress.stop()
            sys.stdout.write(piece)
            sys.stdout.flush()

        answer = service.ask(files, question, run, page_number=page, progress=progress,
                             on_text=on_text if stream else None)
        progress.stop()
        sys.stdout.write("\n" if stream else answer.text + "\n")
        if verbose:
            print_note(f"{answer.image_tokens} image tokens, {answer.new_tokens} new tokens, "
                       f"{answer.seconds:.1f} s, {answer.finish_reason}")


@app.command()
def ocr(
    inputs: Annotated[list[Path], typer.Argument(help="Images, PDFs, or folders of them.")],
    pages: PagesOpt = None, output: OutputDirOpt = None, output_format: FormatOpt = OutputFormat.text,
    prompt: PromptOpt = None, handwriting: HandwritingOpt = False,
    resume: ResumeOpt = False, page_timeout: PageTimeoutOpt = None, fail_fast: FailFastOpt = False,
    failure_report: FailureReportOpt = None, batch_size: BatchSizeOpt = 1,
    model: ModelOpt = DEFAULT_MODEL, revision: RevisionOpt = None, quantize: QuantizeOpt = Quant.none,
    dtype: DTypeOpt = DType.auto, device: DeviceOpt = Device.auto, adapter: AdapterOpt = None,
    offline: OfflineOpt = False, trust_remote_code: TrustRemoteCodeOpt = False, allow_pickle: AllowPickleOpt = False,
    max_new_tokens: MaxNewTokensOpt = None, kv_cache: KVCacheOpt = KVCache.auto,
    split: SplitOpt = None, longest_edge: LongestEdgeOpt = None, bands: BandsOpt = True,
    password: PasswordOpt = None, verbose: VerboseOpt = False,
) -> None:
    """Transcribe images and PDFs page by page.  Example: vlmcli ocr scan.pdf --pages 1-3 -o out/"""
    run = _run_spec(model, revision, quantize, dtype, device, adapter, offline, max_new_tokens,
                    split, longest_edge, bands, password, default_max_new_tokens=None,
                    trust_remote_code=trust_remote_code, allow_pickle=allow_pickle, page_timeout_s=page_timeout,
                    batch_size=batch_size, kv_cache=kv_cache)
    from vlmcli.prompts import ocr_instruction

    with reporting_errors(), RichProgress(verbose) as progress, _sigterm_as_interrupt():
        from vlmcli import batch

        request = batch.OcrRequest(
            inputs=tuple(inputs), instruction=ocr_instruction(prompt, handwriting), run=run, pages=pages,
            output_format=output_format, out_dir=output, resume=resume, fail_fast=fail_fast,
            failure_report=failure_report)
        summary = batch.run_ocr(request, write=_write_stdout, progress=progress, on_failure=_report_failure)
        progress.stop()
    print_note(summary.line())
    raise typer.Exit(int(summary.exit_code))


cli_train.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


def _run_spec(model, revision, quantize, dtype, device, adapter, offline, max_new_tokens,
              split, longest_edge, bands, password, default_max_new_tokens, *, trust_remote_code=False,
              allow_pickle=False, page_timeout_s=None, batch_size=1, kv_cache=KVCache.auto):
    from vlmcli.app import RunSpec

    tokens = max_new_tokens or default_max_new_tokens
    pdf = PdfSpec(password=password, timeout_s=page_timeout_s) if page_timeout_s else PdfSpec(password=password)
    return RunSpec(
        model=ModelSpec(model_id=model, revision=revision, quantize=quantize, dtype=dtype, device=device,
                        adapter=adapter, offline=offline, trust_remote_code=trust_remote_code,
                        allow_pickle=allow_pickle),
        split=SplitSpec(split=split, longest_edge_px=longest_edge, bands=bands),
        generation=GenerationSpec(**({"max_new_tokens": tokens} if tokens else {}), kv_cache=kv_cache),
        pdf=pdf, page_timeout_s=page_timeout_s, batch_size=batch_size,
    )


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn the user's errors into one stderr line and their exit code; let bugs crash."""
    try:
        yield
    except VlmcliError as error:
        print_error(error)
        raise typer.Exit(int(error.exit_code)) from None
    except Terminated:
        print_note("terminated; finished pages are kept (with -o: rerun with --resume)")
        raise typer.Exit(int(ExitCode.terminated)) from None
    except KeyboardInterrupt:
        print_note("interrupted; finished pages are kept (with -o: rerun with --resume)")
        raise typer.Exit(int(ExitCode.interrupted)) from None


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (manifest closed, temporary files removed) instead of killing at once."""
    def terminate(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report_failure(failure) -> None:
    page = f" (page {failure.page_number})" if failure.page_number else ""
    print_error(VlmcliError(f"{failure.error.message}{page}; skipped", hint=failure.error.hint))


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
