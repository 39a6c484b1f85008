"""How a command ends: user errors, Ctrl-C and SIGTERM become one stderr line and their exit code; bugs crash."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from vlmcli.cli.console import print_error, print_note
from vlmcli.errors import ExitCode, Terminated, VlmcliError


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
