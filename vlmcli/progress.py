"""What the services report while they work (stdlib only); the CLI draws it with Rich, others may ignore it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from vlmcli.app import PageFailure, PageResult


class Progress(Protocol):
    """What a caller may show while work runs (all optional to act on)."""

    def loading_model(self, model_id: str) -> None: ...
    def model_loaded(self) -> None: ...
    def pages_started(self, total: int) -> None: ...
    def page_finished(self, item: PageResult | PageFailure) -> None: ...


class NullProgress:
    def loading_model(self, model_id: str) -> None:
        pass

    def model_loaded(self) -> None:
        pass

    def pages_started(self, total: int) -> None:
        pass

    def page_finished(self, item: PageResult | PageFailure) -> None:
        pass
