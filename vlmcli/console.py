"""Everything the user sees on stderr: errors, the loading spinner, the page progress bar (Rich).

stdout carries results only. Progress is drawn only when stderr is a terminal.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

from vlmcli.errors import VlmcliError


def print_error(error: VlmcliError) -> None:
    """One line on stderr: what went wrong, and what to do about it."""
    hint = f" (hint: {error.hint})" if error.hint else ""
    print(f"vlmcli: error: {error.message}{hint}", file=sys.stderr, flush=True)


def print_note(text: str) -> None:
    print(f"vlmcli: {text}", file=sys.stderr, flush=True)


class RichProgress:
    """A spinner while the model loads, then a bar with ETA across pages; silent off a terminal."""

    def __init__(self, verbose: bool = False) -> None:
        self.console = Console(stderr=True)
        self.enabled = self.console.is_terminal
        self.verbose = verbose
        self._status = None
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def loading_model(self, model_id: str) -> None:
        if self.enabled:
            self._status = self.console.status(f"Loading {model_id}…")
            self._status.start()

    def pages_started(self, total: int) -> None:
        self._stop_status()
        if self.enabled:
            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeRemainingColumn(), console=self.console)
            self._bar.start()
            self._task = self._bar.add_task("Pages", total=total)

    def page_finished(self, item) -> None:
        if self.verbose and hasattr(item, "text"):
            self._log(f"{item.source} page {item.page_number}: {item.image_tokens} image tokens, "
                      f"{item.new_tokens} new tokens, {item.bands} band(s), {item.seconds:.1f} s, "
                      f"{item.finish_reason}")
        if self._bar is not None:
            self._bar.advance(self._task)

    def stop(self) -> None:
        self._stop_status()
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _log(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print_note(text)
