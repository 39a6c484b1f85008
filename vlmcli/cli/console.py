"""Everything the user sees on stderr: errors, notes, and progress (Rich) drawn from `vlmcli.progress` reports.

stdout carries results only. Spinners and bars are drawn only when stderr is a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from typing import TYPE_CHECKING

from rich.console import Console

from vlmcli.errors import VlmcliError

if TYPE_CHECKING:
    from rich.progress import Progress


def print_error(error: VlmcliError) -> None:
    """One line on stderr: what went wrong, and what to do about it."""
    hint = f" (hint: {error.hint})" if error.hint else ""
    print(f"vlmcli: error: {error.message}{hint}", file=sys.stderr, flush=True)


def print_note(text: str) -> None:
    print(f"vlmcli: {text}", file=sys.stderr, flush=True)


class RichProgress:
    """`vlmcli.progress.Progress` on stderr: a spinner while the model loads, then a bar with ETA over the units
    of work (pages, steps, examples); notes as lines above it. Silent but for notes off a terminal.

    Rich's live display would normally capture stdout too and print it on its own
    console (stderr here): results must stay on stdout, so only stderr is captured.
    """

    def __init__(self, verbose: bool = False) -> None:
        self.console = Console(stderr=True)
        self.enabled = self.console.is_terminal
        self.verbose = verbose
        self._live: Progress | None = None
        self._task = None

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def loading_model(self, model_id: str) -> None:
        self._show(f"Loading {model_id}…", total=None)

    def model_loaded(self) -> None:
        if self._live is not None:
            self._live.update(self._task, description="Reading…")

    def started(self, total: int, unit: str, done: int = 0) -> None:
        self._show(unit.capitalize(), total=total)
        if self._live is not None:
            self._live.update(self._task, completed=done)

    def advanced(self, done: int, metrics: Mapping[str, float] | None = None) -> None:
        if self._live is not None:
            shown = ", ".join(f"{name} {value:.3g}" for name, value in (metrics or {}).items())
            self._live.update(self._task, completed=done, **({"description": shown} if shown else {}))

    def note(self, text: str, *, detail: bool = False) -> None:
        if detail and not self.verbose:
            return
        if self._live is not None:
            self._live.console.print(f"vlmcli: {text}", markup=False, highlight=False, soft_wrap=True)
        else:
            print_note(text)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _show(self, description: str, total: int | None) -> None:
        """A spinner (no total) or a bar with a count and an ETA; only on a terminal."""
        self.stop()
        if not self.enabled:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeRemainingColumn)

        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        self._live = Progress(*columns, console=self.console, transient=True, redirect_stdout=False,
                              redirect_stderr=True)
        self._task = self._live.add_task(description, total=total)
        self._live.start()
