"""How a command ends: user errors, Ctrl-C and SIGTERM become one stderr line and their exit code; bugs crash.

`run_command` wraps the whole command line (the Typer group's `main`), so parsing mistakes end the same way;
`reporting_errors` wraps a command's body.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer._click import exceptions as click_exceptions

from vlmcli.cli.console import print_error, print_note
from vlmcli.errors import ExitCode, OutputError, Terminated, VlmcliError

_STDOUT_CLOSED = OutputError("cannot write results: stdout is closed",
                             hint="start vlmcli with stdout open: redirect it to a file, a pipe or /dev/null")


def run_command(invoke: Callable[[], Any], standalone_mode: bool) -> Any:
    """Run a parsed command line; its exit code (`sys.exit` with it in standalone mode, as click does)."""
    code = _exit_code(invoke)
    if standalone_mode:
        sys.exit(code)
    return code


def _exit_code(invoke: Callable[[], Any]) -> int:
    if sys.stdout is None:  # started with stdout closed (`>&-`): fd 1 would go to the next file opened
        os.open(os.devnull, os.O_WRONLY)
        print_error(_STDOUT_CLOSED)
        return int(ExitCode.output)
    try:
        result = invoke()
    except click_exceptions.NoArgsIsHelpError as help_shown:
        help_shown.show()
        return int(ExitCode.usage)
    except click_exceptions.ClickException as mistake:
        print_error(VlmcliError(_one_line(mistake.format_message()), hint=_usage_hint(mistake)))
        return int(ExitCode.usage)
    except typer.Abort:
        return int(ExitCode.interrupted)
    except BrokenPipeError:  # the reader of stdout went away (`| head`): nothing more can be shown
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print_error(_STDOUT_CLOSED)
        return int(ExitCode.output)
    return result if isinstance(result, int) else int(ExitCode.ok)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _usage_hint(mistake: click_exceptions.ClickException) -> str | None:
    context = getattr(mistake, "ctx", None)
    return f"see '{context.command_path} --help'" if context is not None else None


@contextmanager
def reporting_errors(*, resumable: bool = False) -> Iterator[None]:
    """Turn the user's errors into one stderr line and their exit code; let bugs crash. `resumable`: the command
    keeps finished pages in a manifest (`ocr -o`), so an interruption says how to go on."""
    going_on = "; finished pages are kept (with -o: rerun with --resume)" if resumable else ""
    try:
        yield
    except VlmcliError as error:
        print_error(error)
        raise typer.Exit(int(error.exit_code)) from None
    except Terminated:
        print_note(f"terminated{going_on}")
        raise typer.Exit(int(ExitCode.terminated)) from None
    except KeyboardInterrupt:
        print_note(f"interrupted{going_on}")
        raise typer.Exit(int(ExitCode.interrupted)) from None


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
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
