"""Everything the user sees on stderr: errors, notes, and progress (Rich) drawn from `vlmcli.progress` reports.

stdout carries results only. Spinners and bars are drawn only when stderr is a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from vlmcli.errors import VlmcliError


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
        from rich.progress import Progress, SpinnerColumn, TextColumn  # not needed by --help

        self._show(Progress(SpinnerColumn(), TextColumn("{task.description}"), **self._live_options()),
                   f"Loading {model_id}…", total=None)

    def model_loaded(self) -> None:
        if self._live is not None:
            self._live.update(self._task, description="Reading…")

    def started(self, total: int, unit: str, done: int = 0) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

        self._show(Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), **self._live_options()), unit.capitalize(), total=total)
        if self._live is not None:
            self._live.update(self._task, completed=done)

    def advanced(self, done: int, metrics: Mapping[str, float] | None = None) -> None:
        if self._live is not None:
            shown = {"description": ", ".join(f"{name} {value:.3g}" for name, value in metrics.items())} if metrics else {}
            self._live.update(self._task, completed=done, **shown)

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

    def _live_options(self) -> dict:
        return {"console": self.console, "transient": True, "redirect_stdout": False, "redirect_stderr": True}

    def _show(self, live: Progress, description: str, total: int | None) -> None:
        self.stop()
        if self.enabled:
            self._live = live
            self._task = live.add_task(description, total=total)
            live.start()
