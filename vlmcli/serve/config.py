"""What `vlmcli serve` is started with (stdlib only): where it listens, who may call it, and its limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from vlmcli.errors import UsageError
from vlmcli.specs import API_KEY_ENV_VAR, RunSpec

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ServeSpec:
    run: RunSpec  # the model and how pages are read (the OCR token budget by default)
    max_new_tokens: int | None = None  # --max-new-tokens as given: every endpoint's default when set
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = field(default=None, repr=False)
    max_waiting: int = 16  # requests waiting for the model; past it, 429
    timeout_s: float = 600.0  # a request's whole life: waiting, then reading
    max_body_mb: float = 32.0
    max_pages: int = 100  # pages of one uploaded document (and images of one chat request)
    max_tokens: int = 8192  # the most tokens one request may ask for
    work_dir: Path | None = None  # uploads and per-document manifests; default: a temporary folder

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * (1 << 20))

    def check(self) -> None:
        """Refuse a server that anyone on the network could use without a key."""
        if not is_loopback(self.host) and not self.api_key:
            raise UsageError(f"--host {self.host} would serve the model to the network without a key",
                             hint=f"pass --api-key (or set {API_KEY_ENV_VAR}), or keep the default {DEFAULT_HOST}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
