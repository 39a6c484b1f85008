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
    """A spinner while the model loads, then a bar with ETA across pages; silent off a terminal.

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
        self._show(Progress(SpinnerColumn(), TextColumn("{task.description}"), **self._live_options()),
                   f"Loading {model_id}…", total=None)

    def model_loaded(self) -> None:
        if self._live is not None:
            self._live.update(self._task, description="Reading…")

    def pages_started(self, total: int) -> None:
        self._show(Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), **self._live_options()), "Pages", total=total)

    def page_finished(self, item) -> None:
        if self.verbose and hasattr(item, "text"):
            self._log(f"{item.source} page {item.page_number}: {item.image_tokens} image tokens, "
                      f"{item.new_tokens} new tokens, {item.bands} band(s), {item.seconds:.1f} s, "
                      f"{item.finish_reason}")
        if self._live is not None:
            self._live.advance(self._task)

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

    def _log(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print_note(text)


class TrainProgress:
    """Training progress on stderr: a bar with step, loss, learning rate and ETA; notes and evaluations as lines."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> TrainProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def event(self, name: str, details: dict) -> None:
        """Receives the events of `finetune.train.run` and `vlmcli eval`."""
        if name == "note":
            self._line(details["text"])
        elif name == "evaluated":
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in details.items() if k != "label")
            self._line(f"eval {details['label']} training: {metrics}")
        elif name in ("started", "step"):
            self._advance(details["step"], details["max_steps"])
        elif name == "log":
            self._line(f"step {details['step']}: loss {details['loss']:.4f}, lr {details['learning_rate']:.3g}")
            if self._bar is not None:
                self._bar.update(self._task, description=f"loss {details['loss']:.3f}")

    def _advance(self, step: int, total: int) -> None:
        if self._bar is None and self.console.is_terminal:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=True, redirect_stdout=False)
            self._task = self._bar.add_task("training", total=total)
            self._bar.start()
        if self._bar is not None:
            self._bar.update(self._task, completed=step, total=total)

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(f"vlmcli: {text}", markup=False, highlight=False, soft_wrap=True)
        else:
            print_note(text)
