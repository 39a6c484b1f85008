"""A stage's sources loaded and checked, each at its own resolution.

Before the model loads every file is loaded (JSON, fields, images present); after, every
example is encoded once by the processor of its source's resolution (unreadable images,
over-long sequences). Problems name the file and the line, for all files at once.
A replayed source is cut, with the stage's seed, to the draws it will get, so an earlier
stage's large dataset is not checked in full again for a small share of this one.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmcli.finetune.collate import validate
from vlmcli.finetune.data import Example, Problem, load_examples
from vlmcli.finetune.mixture import Source

from vlmcli.errors import InputError
from vlmcli.model.processor import at_resolution, resolution
from vlmcli.progress import NullProgress, Progress
from vlmcli.specs import SplitSpec


@dataclass(frozen=True)
class Sourced:
    """A source and its usable examples (`Example.resolution` set from the source)."""

    source: Source
    examples: list[Example]


def load_sources(sources: tuple[Source, ...], skip_bad: bool, progress: Progress | None = None) -> list[Sourced]:
    """Load every file before the model loads; bad lines fail (all files reported) or are skipped and noted."""
    found = []
    for source in sources:
        if source.path.exists() and not source.path.is_file():
            raise InputError(f"{source.path}: not a regular file", hint="give a JSONL file of examples")
        if not source.path.is_file():
            if source.replay_of:
                raise InputError(f"{source.path}: no such data file (the training data of {source.replay_of}, "
                                 "replayed)", hint="--replay 0 trains without it")
            raise InputError(f"{source.path}: no such data file")
        examples, problems = load_examples(source.path)
        examples = [dataclasses.replace(e, resolution=source.resolution) for e in examples]
        found.append((source, examples, problems))
    return _apply_policy(found, skip_bad, progress or NullProgress())


def replay_cut(sourced: list[Sourced], shares: list[float], total_draws: int, seed: int) -> list[Sourced]:
    """Each replayed source cut to a random subset as large as its expected draws (at least one example)."""
    rng = random.Random(seed)
    cut = []
    for item, share in zip(sourced, shares):
        keep = max(1, math.ceil(share * total_draws))
        if item.source.replay_of and keep < len(item.examples):
            chosen = sorted(rng.sample(range(len(item.examples)), keep))
            item = Sourced(item.source, [item.examples[i] for i in chosen])
        cut.append(item)
    return cut


def resolution_views(loaded: Any, sources: list[Source]) -> dict[tuple, Any]:
    """The resolution views of `loaded`: a copy whose processor works at a source's own resolution, one per
    resolution."""
    views = {}
    for source in sources:
        if source.resolution is not None and source.resolution not in views:
            views[source.resolution] = at_resolution(
                loaded, SplitSpec(split=source.split, longest_edge_px=source.longest_edge_px))
    return views


def view_of(loaded: Any, views: dict[tuple, Any], source: Source) -> Any:
    """The view the source is encoded with: its own resolution's, or the stage's (`loaded` itself)."""
    return views.get(source.resolution, loaded)


def effective_resolution(loaded: Any, views: dict[tuple, Any], source: Source) -> dict:
    """The resolution the source is encoded at, as run.json records it (so a replay encodes it the same way)."""
    return resolution(view_of(loaded, views, source))


def validate_sources(sourced: list[Sourced], loaded: Any, views: dict[tuple, Any], pdf, max_length: int,
                     skip_bad: bool, progress: Progress) -> list[Sourced]:
    """Encode every example once with its source's processor; bad ones fail (all reported) or are skipped."""
    found = []
    for item in sourced:
        view = view_of(loaded, views, item.source)
        good, problems = validate(item.examples, view.processor, view.image_token_id, view.max_input_px, pdf,
                                  max_length, view.family)
        found.append((item.source, good, problems))
    return _apply_policy(found, skip_bad, progress)


def _apply_policy(found: list[tuple[Source, list[Example], list[Problem]]], skip_bad: bool,
                  progress: Progress) -> list[Sourced]:
    bad = [(source.path, problems) for source, _, problems in found if problems]
    if bad and not skip_bad:
        raise InputError("; ".join(_listed(path, problems) for path, problems in bad),
                         hint="fix them, or pass --on-bad-example skip to train without them")
    for path, problems in bad:
        for problem in problems:
            progress.note(f"{path}: skipping {problem}")
    empty = [str(source.path) for source, good, _ in found if not good]
    if empty:
        raise InputError(f"{', '.join(empty)}: no usable examples")
    return [Sourced(source, good) for source, good, _ in found]


def _listed(path: Path, problems: list[Problem]) -> str:
    listed = "; ".join(str(p) for p in problems[:5]) + ("; …" if len(problems) > 5 else "")
    return f"{path}: {len(problems)} bad example(s): {listed}"
