"""Run a PDF tool as a child process that can be killed whole (stdlib only).

Parsers of untrusted PDFs (poppler's tools, PDFium) run outside vlmcli: a crash
or hang costs one page, not the run. The child gets its own process group, and
on timeout or Ctrl-C the whole group is killed, so no grandchild is left holding
the pipes.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: bytes
    stderr: bytes


class TimedOut(Exception):
    """The child ran past its timeout and was killed with its group."""


def run_child(argv: list[str], timeout_s: float, stdin: bytes | None = None,
              env: dict[str, str] | None = None) -> Finished:
    """Run `argv` to completion (OSError if it cannot start; `TimedOut` after `timeout_s`)."""
    child = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env)
    try:
        out, err = child.communicate(input=stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        raise TimedOut() from None
    except BaseException:  # Ctrl-C while the child runs: never leave it behind
        _kill_group(child)
        raise
    return Finished(child.returncode, out, err)


def signal_name(returncode: int) -> str:
    """SIGSEGV for -11: the signal that ended a child."""
    number = -returncode
    return signal.Signals(number).name if number in signal.valid_signals() else str(number)


def _kill_group(child: subprocess.Popen) -> None:
    # A wrapper script's own children share the group: killing only the child
    # would leave them holding the pipes, and communicate() would wait on them.
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.communicate()
