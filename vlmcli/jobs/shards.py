"""Which documents a shard of a job array reads (stdlib only, pure).

Shard K of N (1-based) takes the documents whose key, the document's path
relative to the input it was found under, hashes to K. Every shard computes the
same partition from the same listing with no coordination; the hash is SHA-256,
never Python's `hash()` (salted per process). A document is never split: its
pages go to one shard. Documents whose output names collide (x/a.pdf and y/a.pdf
given together) share a key and so a shard, which keeps their file names those of
one unsharded run.

Job arrays give the index in the environment: Slurm's `SLURM_ARRAY_TASK_ID` and
`SLURM_ARRAY_TASK_COUNT` (with `_MIN` and `_STEP`, since arrays may start anywhere
and skip ids), Kubernetes Indexed Jobs' 0-based `JOB_COMPLETION_INDEX` with a
count given apart.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from vlmcli.errors import UsageError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
K8S_INDEX = "JOB_COMPLETION_INDEX"
SLURM_ID, SLURM_COUNT, SLURM_MIN, SLURM_STEP = (
    "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based: K of K/N
    count: int  # N

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise UsageError(f"--shard {self.index}/{self.count}: K must be between 1 and N",
                             hint="shards are numbered from 1, e.g. --shard 1/4 ... --shard 4/4")

    @property
    def label(self) -> str:
        """`K-of-N`, as it appears in the names of the shard's manifest and failure report."""
        return f"{self.index}-of-{self.count}"

    def owns(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """The 1-based shard of `count` that a document key belongs to."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(text: str) -> Shard:
    """'K/N' (1-based K) -> Shard."""
    match = _SHARD.match(text)
    if not match:
        raise UsageError(f"--shard: '{text}' is not K/N", hint="e.g. --shard 3/16 for the third of 16 shards")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise UsageError(f"--shard {text}: N must be at least 1")
    return Shard(index, count)


def shard_from_environment(environ: Mapping[str, str], shard_count: int | None) -> tuple[Shard, str] | None:
    """The shard a job array's environment names, and which variable named it; None outside job arrays.

    A Kubernetes index needs `shard_count` (the Job's `completions`); with it, it wins over Slurm's variables.
    """
    if K8S_INDEX in environ:
        if shard_count is None:
            raise UsageError(f"{K8S_INDEX} is set (a Kubernetes Indexed Job) but the number of shards is not",
                             hint="give --shard-count N (the Job's completions), or --shard K/N")
        return Shard(_integer(environ, K8S_INDEX) + 1, shard_count), K8S_INDEX
    if SLURM_ID in environ and SLURM_COUNT in environ:
        task_id, count = _integer(environ, SLURM_ID), _integer(environ, SLURM_COUNT)
        first = _integer(environ, SLURM_MIN) if SLURM_MIN in environ else 0
        step = _integer(environ, SLURM_STEP) if SLURM_STEP in environ else 1
        if shard_count is not None and shard_count != count:
            raise UsageError(f"--shard-count {shard_count} disagrees with {SLURM_COUNT}={count}")
        return Shard((task_id - first) // max(step, 1) + 1, count), SLURM_ID
    if shard_count is not None:
        raise UsageError("--shard-count needs a job array index",
                         hint=f"set by Kubernetes ({K8S_INDEX}) or Slurm; by hand, use --shard K/N")
    return None


def _integer(environ: Mapping[str, str], name: str) -> int:
    try:
        return int(environ[name])
    except ValueError:
        raise UsageError(f"{name}={environ[name]!r} is not a whole number") from None
