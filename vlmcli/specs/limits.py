"""What numeric options and settings accept (stdlib only): finite numbers within a range, checked while the
command line is parsed (cli/options.py) and wherever a value comes from elsewhere (a TOML file, a library caller)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from vlmcli.errors import UsageError


@dataclass(frozen=True)
class Range:
    """The values a numeric option or setting accepts: finite, and within [low, high] (an end can be open).

    The CLI checks flags against it while parsing (cli/options.py); `check` does the same for values that come
    from elsewhere (a TOML file, a library caller)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def accepts(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self) -> str:
        low = "" if self.low is None else f"{_plain(self.low)} {'<' if self.low_open else '<='} "
        high = "" if self.high is None else f" {'<' if self.high_open else '<='} {_plain(self.high)}"
        return f"{low}x{high}" if low or high else "a finite number"

    def check(self, name: str, value: float) -> None:
        """Raise a UsageError naming `name` unless `value` is accepted."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.accepts(value):
            raise UsageError(f"{name} = {value!r} is out of range (needs {self.describe()})")


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


# What the numeric options of ask and ocr accept: wide enough for any real use, narrow enough that no value
# overflows a tensor or asks for terabytes. Token budgets are checked against the model's context as well.
MAX_NEW_TOKENS_RANGE = Range(1, 1 << 20)
LONGEST_EDGE_RANGE = Range(64, 16384)
PAGE_TIMEOUT_RANGE = Range(0, 7 * 24 * 3600, low_open=True)
BATCH_SIZE_RANGE = Range(1, 1024)
PAGE_RANGE = Range(1, 1_000_000)
TOP_K_RANGE = Range(1, 1000)
SHARD_COUNT_RANGE = Range(1, 1_000_000)
RAY_ACTORS_RANGE = Range(1, 100_000)
RAY_ACTOR_CPUS_RANGE = Range(0, 4096, low_open=True)
RAY_ACTOR_GPUS_RANGE = Range(0, 1024)
SHARE_RANGE = Range(0, 1)  # a fraction of a whole
