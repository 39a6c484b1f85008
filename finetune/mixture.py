"""Training data as a mixture of sources, and replay of an earlier stage's mixture (stdlib only).

A source is a JSONL file with an optional weight and its own resolution:

    --data pages.jsonl --data lines.jsonl:0.3
    --data "glyphs.jsonl:weight=0.1,split=false,longest_edge_px=64"
    [[data]]                          (TOML config, paths relative to the config file)
    path = "lines.jsonl"
    weight = 0.3
    split = true
    longest_edge_px = 256

A weight is the source's share of the examples drawn. Sources without one share
what the weighted ones leave, in proportion to their size (so unweighted sources
alone are the files concatenated); when every source has a weight, the weights
are normalised. Replay (a stage started `--from` an earlier run) takes the stage's
`replay` share of the draws for the data the earlier run trained on, each source at
the resolution it was trained at, and the stage's own sources keep their proportions
in the rest. That data is grouped by the run it was first trained in (the earlier
run's own sources, and those it replayed in turn), and each group gets an equal part
of the replayed share, split within it as that run split it: so the first stage's
data keeps its part in the third stage instead of fading to a share of a share.
An epoch is as many draws as the stage's own sources hold, plus the replayed share
on top, so the new data is seen as often as without replay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vlmcli.errors import UsageError
from vlmcli.specs import LONGEST_EDGE_RANGE, Range

DATA_KEYS = ("path", "weight", "split", "longest_edge_px")
EVAL_KEYS = ("path", "name", "split", "longest_edge_px")
WEIGHT_RANGE = Range(0, None, low_open=True)  # a share of the draws, relative to the others: any finite value above 0


@dataclass(frozen=True)
class Source:
    path: Path
    weight: float | None = None  # own sources: as given (None = by size); replayed ones: their share of all draws
    split: bool | None = None  # None: the stage's setting
    longest_edge_px: int | None = None  # None: the stage's setting
    replay_of: Path | None = None  # replayed: the earlier run whose own training data this was
    name: str | None = None  # eval sets: the name in reports (default: the file's stem)

    @property
    def resolution(self) -> tuple[bool | None, int | None] | None:
        """The source's own (split, longest_edge_px), or None where it reads at the stage's."""
        if self.split is None and self.longest_edge_px is None:
            return None
        return self.split, self.longest_edge_px

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path.resolve()), "weight": self.weight, "split": self.split,
                "longest_edge_px": self.longest_edge_px,
                "replay_of": str(self.replay_of.resolve()) if self.replay_of else None,
                **({"name": self.name} if self.name else {})}


def parse_source(text: str, option: str = "--data") -> Source:
    """`PATH`, `PATH:WEIGHT` or `PATH:key=value,...` (keys as in the TOML tables). An existing file wins."""
    keys = DATA_KEYS if option == "--data" else EVAL_KEYS
    path, colon, spec = text.rpartition(":")
    if not colon or Path(text).exists() or not path:
        return Source(Path(text))
    if "=" in spec:
        items = {}
        for item in spec.split(","):
            key, equals, value = item.partition("=")
            if not equals:
                raise UsageError(f"{option} {text}: expected key=value, not {item!r}")
            items[key.strip()] = value.strip()
        return source_from_table({"path": path, **items}, keys, option, base=None)
    try:
        weight = float(spec)
    except ValueError:
        if Path(path).is_file():
            raise UsageError(f"{option} {text}: the weight after the colon, {spec!r}, is not a number",
                             hint="PATH:0.3, or PATH:weight=0.3,split=false") from None
        return Source(Path(text))  # a colon that belongs to the file name
    if option != "--data":
        raise UsageError(f"{option} {text}: evaluation sets take no weight")
    return source_from_table({"path": path, "weight": weight}, keys, option, base=None)


def source_from_table(table: dict[str, Any], keys: tuple[str, ...], where: str, base: Path | None) -> Source:
    """A source from a TOML table or parsed `key=value` items; strings are converted (from the command line)."""
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}", hint=f"known keys: {', '.join(keys)}")
    if not isinstance(table.get("path"), str) or not table["path"]:
        raise UsageError(f"{where}: every source needs a path")
    path = Path(table["path"])
    weight = _number(table.get("weight"), float, "weight", where)
    if weight is not None:
        WEIGHT_RANGE.check(f"{where}: weight", weight)
    edge = _number(table.get("longest_edge_px"), int, "longest_edge_px", where)
    if edge is not None:
        LONGEST_EDGE_RANGE.check(f"{where}: longest_edge_px", edge)
    name = table.get("name")
    return Source(path=base / path if base and not path.is_absolute() else path, weight=weight,
                  split=_boolean(table.get("split"), where), longest_edge_px=edge,
                  name=str(name) if name is not None else None)


def sources_in_config(settings: dict[str, Any], config: Path | None
                      ) -> tuple[dict[str, Any], list[Source], list[Source]]:
    """Split a config file's settings into stage settings, `[[data]]` sources and `[[eval_data]]` sets (without
    the replayed sources `--show-config` lists: `--from` decides those)."""
    settings = dict(settings)
    found = []
    for key, keys in (("data", DATA_KEYS), ("eval_data", EVAL_KEYS)):
        tables = settings.pop(key, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise UsageError(f"{config}: {key} must be an array of tables ([[{key}]])")
        base = config.parent if config else None
        # A replayed source, as --show-config prints one, is the --from run's: --from brings it back.
        found.append([source_from_table(t, keys, f"{config}: [[{key}]]", base) for t in tables
                      if key != "data" or "replay_of" not in t])
    return settings, found[0], found[1]


def training_sources(own: list[Source], replay: float, earlier: tuple[Path, dict] | None) -> tuple[Source, ...]:
    """The stage's own sources, then what the earlier run trained on at `replay` of the draws (module docstring)."""
    if not 0 <= replay < 1:
        raise UsageError(f"replay = {replay} must be at least 0 and below 1", hint="--replay 0 turns replay off")
    weighted = sum(s.weight for s in own if s.weight is not None)
    if weighted >= 1 and any(s.weight is None for s in own):
        raise UsageError(f"the --data weights add up to {weighted:g}, which leaves nothing for the sources "
                         "without a weight", hint="give every source a weight, or keep the weights below 1 in all")
    if earlier is None or replay == 0:
        return tuple(own)
    groups: dict[Path, list[Source]] = {}
    for source in earlier_mixture(*earlier):
        groups.setdefault(source.replay_of, []).append(source)
    replayed = [replace(s, weight=replay / len(groups) * s.weight / sum(g.weight for g in group))
                for group in groups.values() for s in group]
    return (*own, *replayed)


def earlier_mixture(folder: Path, info: dict[str, Any]) -> list[Source]:
    """What an earlier run trained on, from its run.json: each source with its share, resolution and origin."""
    data = info.get("data")
    if isinstance(data, str):  # a single file, as run.json recorded it before mixtures
        stage = info.get("stage", {})
        return [Source(Path(data), 1.0, split=stage.get("split"), longest_edge_px=stage.get("longest_edge_px"),
                       replay_of=folder)]
    return [Source(Path(item["path"]), float(item["share"]), split=item.get("split"),
                   longest_edge_px=item.get("longest_edge_px"),
                   replay_of=Path(item["replay_of"]) if item.get("replay_of") else folder) for item in data or []]


def shares(sources: tuple[Source, ...], sizes: list[int]) -> list[float]:
    """Each source's share of the draws (see the module docstring); they sum to 1."""
    replayed = sum(s.weight for s in sources if s.replay_of)
    own = [i for i, s in enumerate(sources) if not s.replay_of]
    weighted = sum(sources[i].weight for i in own if sources[i].weight is not None)
    by_size = [i for i in own if sources[i].weight is None]
    result = [s.weight if s.replay_of else 0.0 for s in sources]
    for i in own:
        if by_size:
            given = sources[i].weight
            result[i] = given if given is not None else (1 - weighted) * sizes[i] / sum(sizes[j] for j in by_size)
        else:
            result[i] = sources[i].weight / weighted
        result[i] *= 1 - replayed
    return result


def draws_per_epoch(sources: tuple[Source, ...], sizes: list[int]) -> int:
    """As many draws as the stage's own sources hold, with the replayed share on top."""
    replayed = sum(s.weight for s in sources if s.replay_of)
    return math.ceil(sum(n for s, n in zip(sources, sizes) if not s.replay_of) / (1 - replayed))


def set_names(sets: tuple[Source, ...]) -> list[str]:
    """Report names of evaluation sets: the given name, else the file's stem, else (stems clash) the path."""
    taken = [s.name or s.path.stem for s in sets]
    names = [s.name or (s.path.stem if taken.count(s.path.stem) == 1 else str(s.path)) for s in sets]
    if len(set(names)) != len(names):
        raise UsageError(f"two evaluation sets are named alike: {', '.join(names)}",
                         hint="give them names: --eval-data PATH:name=NAME")
    return names


def _number(value: Any, kind: type, key: str, where: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            raise UsageError(f"{where}: {key} = {value!r} is not a {kind.__name__}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise UsageError(f"{where}: {key} = {value!r} is not a {kind.__name__}")
    return kind(value)


def _boolean(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise UsageError(f"{where}: split = {value!r} is not true or false")
