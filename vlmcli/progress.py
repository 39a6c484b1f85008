"""What long work reports while it runs (stdlib only): one protocol for reading pages and for training.

The pipeline, the OCR job and fine-tuning call it; the CLI draws it on stderr
(cli/console.py); a library caller may pass `NullProgress`. Work is counted in
units (pages, training steps, examples): `started` says how many, `advanced`
how far it got, and `note` is a line for the person watching.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Progress(Protocol):
    def loading_model(self, model_id: str) -> None:
        """The checkpoint starts loading (the slow part before the first unit)."""

    def model_loaded(self) -> None:
        """The checkpoint is loaded."""

    def started(self, total: int, unit: str, done: int = 0) -> None:
        """`total` units of work begin (`done` of them already are, e.g. after a resume)."""

    def advanced(self, done: int, metrics: Mapping[str, float] | None = None) -> None:
        """`done` units are finished; `metrics` are numbers measured at this point (a training loss)."""

    def note(self, text: str, *, detail: bool = False) -> None:
        """A line for the user; `detail` lines are for those who asked for details (-v)."""


class NullProgress:
    """Reports nothing."""

    def loading_model(self, model_id: str) -> None:
        pass

    def model_loaded(self) -> None:
        pass

    def started(self, total: int, unit: str, done: int = 0) -> None:
        pass

    def advanced(self, done: int, metrics: Mapping[str, float] | None = None) -> None:
        pass

    def note(self, text: str, *, detail: bool = False) -> None:
        pass
