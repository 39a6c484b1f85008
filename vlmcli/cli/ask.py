"""`vlmcli ask`: a question about images or one PDF page (`--page`), or about whole documents, answered with the
page it came from. Options → specs → one call → the answer on stdout.

Nothing here imports torch or the search libraries: the pipeline is imported
inside the command body, so `--help` and input mistakes stay fast.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vlmcli.cli.console import RichProgress, print_note
from vlmcli.cli.exits import reporting_errors
from vlmcli.cli.options import (
    AnswerFormatOpt,
    FirstPassLangOpt,
    FirstPassOpt,
    SearchPagesOpt,
    StrictOpt,
    TopKOpt,
    VerboseOpt,
    number,
    run_spec,
    with_run_options,
)
from vlmcli.errors import UsageError
from vlmcli.specs import (
    ANSWER_MAX_NEW_TOKENS,
    DEFAULT_TOP_K,
    PAGE_RANGE,
    AnswerFormat,
    FirstPass,
    FirstPassSpec,
    RunSpec,
    SearchSpec,
)


@with_run_options
def ask(
    files: Annotated[Optional[list[Path]], typer.Argument(
        readable=False, show_default=False, help="Images, PDFs or folders (images without --page are shown together; "
                                                 "PDFs and folders are searched page by page).")] = None,
    question: Annotated[Optional[str], typer.Argument(
        show_default=False, help="The question, in quotes (always the last argument).")] = None,
    page: Annotated[Optional[int], typer.Option(
        **number(PAGE_RANGE),
        help="Look at this page of each PDF (1-based) instead of searching the whole document.")] = None,
    pages: SearchPagesOpt = None, top_k: TopKOpt = DEFAULT_TOP_K, strict: StrictOpt = False,
    first_pass: FirstPassOpt = FirstPass.auto, first_pass_lang: FirstPassLangOpt = None,
    answer_format: AnswerFormatOpt = AnswerFormat.text, verbose: VerboseOpt = False, *, run_options: dict[str, Any],
) -> None:
    """Answer a question about images or PDFs, citing the page.  Example: vlmcli ask report.pdf "What is the total?" """
    with reporting_errors(), RichProgress(verbose) as progress:
        if not files or question is None:  # with one argument, click gives it to the question
            given = f"; only {question!r} was given" if question is not None else ""
            raise UsageError(f"ask needs files and then a question{given}",
                             hint='put the question, in quotes, after the files: vlmcli ask report.pdf "What is '
                                  'the total?"')
        run, _ = run_spec(run_options, default_max_new_tokens=ANSWER_MAX_NEW_TOKENS)
        if page is not None and pages is not None:
            raise UsageError("--page and --pages do not go together",
                             hint="--page N reads one page; --pages searches a range")
        if page is None and _searches(files):
            scans = FirstPassSpec.from_options(first_pass=first_pass, first_pass_lang=first_pass_lang)
            _ask_documents(files, question, run, SearchSpec(pages=pages, top_k=top_k, strict=strict, first_pass=scans),
                           answer_format, progress, verbose)
        else:
            _ask_pages(files, question, run, page or 1, answer_format, progress, verbose)


def _searches(files: list[Path]) -> bool:
    """Whether the question is about whole documents: a folder or a PDF is among the inputs."""
    from vlmcli.inputs.documents import is_pdf

    return any(path.is_dir() or is_pdf(path) for path in files)


def _ask_documents(files: list[Path], question: str, run: RunSpec, search: SearchSpec, answer_format: AnswerFormat,
                   progress: RichProgress, verbose: bool) -> None:
    from vlmcli.pipeline.docqa.answer import ask_documents
    from vlmcli.pipeline.docqa.citation import cite

    # Streamed only without -v: its notes on stderr would land inside the text that may be taken back.
    streams = answer_format is AnswerFormat.text and sys.stdout.isatty() and not verbose
    terminal = _Terminal(progress) if streams else None
    answer = ask_documents(files, question, run, search, progress=progress,
                           on_text=terminal.write if terminal else None,
                           on_discard=terminal.erase if terminal else lambda: None)
    progress.stop()
    if answer_format is AnswerFormat.json:
        sys.stdout.write(json.dumps(answer.record(), ensure_ascii=False) + "\n")
    elif terminal is not None and answer.grounded and terminal.written:
        sys.stdout.write(f" {cite(answer.citation, name_file=answer.name_files)}\n")  # the answer is on screen
    else:
        if terminal is not None:
            terminal.erase()
        sys.stdout.write(answer.line() + "\n")


def _ask_pages(files: list[Path], question: str, run: RunSpec, page_number: int, answer_format: AnswerFormat,
               progress: RichProgress, verbose: bool) -> None:
    from vlmcli.pipeline import ask as asking

    def on_text(piece: str) -> None:
        progress.stop()
        sys.stdout.write(piece)
        sys.stdout.flush()

    stream = answer_format is AnswerFormat.text and sys.stdout.isatty()
    answer = asking.ask(files, question, run, page_number=page_number, progress=progress,
                        on_text=on_text if stream else None)
    progress.stop()
    if answer_format is AnswerFormat.json:
        record = {"answer": answer.text, "image_tokens": answer.image_tokens, "new_tokens": answer.new_tokens,
                  "seconds": round(answer.seconds, 3), "finish_reason": answer.finish_reason}
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write("\n" if stream else answer.text + "\n")
    if verbose:
        print_note(f"{answer.image_tokens} image tokens, {answer.new_tokens} new tokens, "
                   f"{answer.seconds:.1f} s, {answer.finish_reason}")


class _Terminal:
    """Streams a page's answer to the terminal as it is generated, and takes it back off the screen when the
    answer is rejected (not on the page), so only the answer that is kept stays."""

    def __init__(self, progress: RichProgress) -> None:
        self.progress, self.written = progress, ""

    def write(self, piece: str) -> None:
        self.progress.stop()
        sys.stdout.write(piece)
        sys.stdout.flush()
        self.written += piece

    def erase(self) -> None:
        if not self.written:
            return
        columns = max(1, shutil.get_terminal_size().columns)
        rows = sum(max(1, math.ceil(len(line) / columns)) for line in self.written.split("\n"))
        sys.stdout.write("\r\x1b[2K" + "\x1b[1A\x1b[2K" * (rows - 1))
        sys.stdout.flush()
        self.written = ""
