"""How far an output folder's job has got, from its manifests alone (`vlmcli status OUT`; stdlib only).

Every run (or shard) wrote its plan, its finished pages and its failed pages to
its own manifest. A page counts once however many manifests name it: done if any
manifest finished it, else failed if one failed it, else pending. A manifest
with no plan (a run killed while listing its inputs) plans what it recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vlmcli.errors import InputError
from vlmcli.jobs import manifest


@dataclass(frozen=True)
class Counts:
    planned: int
    done: int
    failed: int
    pending: int
    failed_inputs: int  # inputs that could not be opened (no pages to count)


@dataclass(frozen=True)
class ManifestStatus:
    name: str
    shard: str | None  # "K-of-N", or None for a whole run
    counts: Counts


@dataclass(frozen=True)
class JobStatus:
    manifests: list[ManifestStatus]
    total: Counts
    dropped_lines: int  # torn lines (a run killed mid-write, or one appending right now)


@dataclass(frozen=True)
class _Manifest:
    path: Path
    planned: set[str]
    failed_inputs: set[str]
    shard: str | None


def job_status(out_dir: Path) -> JobStatus:
    """Pages planned, done, failed and pending, per manifest and over all of them (each page once)."""
    paths = manifest.manifest_paths(out_dir)
    if not paths:
        raise InputError(f"{out_dir}: no vlmcli manifest here",
                         hint="give the -o folder of a `vlmcli ocr` run (it holds .vlmcli-manifest*.jsonl)")
    done, failed, manifests, dropped = set(), set(), [], 0
    for path in paths:
        try:
            entries, torn = manifest.load_entries(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot be read ({exc.strerror or exc})",
                             hint="check the file's permissions") from None
        dropped += torn
        own_done = {entry["key"] for entry in entries if "record" in entry}
        own_failed = {entry["key"] for entry in entries if "failed" in entry}
        done |= own_done
        failed |= own_failed
        plans = [entry["plan"] for entry in entries if "plan" in entry]
        plan = plans[-1] if plans else {}
        planned = set(plan.get("pages", ())) | own_done | own_failed
        manifests.append(_Manifest(path, planned, set(plan.get("failed_inputs", ())), plan.get("shard")))
    failed -= done
    rows = [ManifestStatus(item.path.name, item.shard, _counts(item.planned, done, failed, item.failed_inputs))
            for item in manifests]
    everything = _counts(set().union(*(item.planned for item in manifests)), done, failed,
                         set().union(*(item.failed_inputs for item in manifests)))
    return JobStatus(rows, everything, dropped)


def _counts(planned: set[str], done: set[str], failed: set[str], failed_inputs: set[str]) -> Counts:
    finished, broken = len(planned & done), len(planned & failed)
    return Counts(len(planned), finished, broken, len(planned) - finished - broken, len(failed_inputs))
