"""The docs' tables that come from vlmcli's own definitions rather than from a benchmark's output: every run
option (specs/options.py `RunOptions`), every option of `vlmcli finetune` (finetune/options.py `FinetuneOptions`)
and every named checkpoint (catalogue.py), so none is listed by hand."""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum


def run_options() -> str:
    """Every run option of `ask`, `ocr` and `serve`: its flags, default, what it accepts and does, and whether it
    is part of the resume fingerprint."""
    from vlmcli.specs import RunOptions

    rows = []
    for item in dataclasses.fields(RunOptions):
        option = item.metadata["option"]
        flags = ", ".join(f"`{flag}`" for flag in option.flags) + (f" / env `{option.envvar}`" if option.envvar else "")
        default = option.shown_default or _default(item.default)
        accepts = f"{option.accepts.describe()}" if option.accepts else _choices(item.default)
        resume = "yes" if option.text else f"no: {option.why_not_text}"
        rows.append(f"| {flags} | {default} | {accepts} | {_cell(option.help)} | {resume} |")
    header = ("| option | default | accepts | what it does | a change reads done pages again |\n"
              "|---|---|---|---|---|")
    return header + "\n" + "\n".join(rows) + "\n\nGenerated from `RunOptions` in `vlmcli/specs/options.py`."


def finetune_options() -> str:
    """Every option of `vlmcli finetune`: its flags, default, what it accepts and does, and the stage setting it
    overrides (the name a --config file and --show-config use)."""
    from vlmcli.finetune.options import FinetuneOptions

    rows, hints = [], typing.get_type_hints(FinetuneOptions)
    for item in dataclasses.fields(FinetuneOptions):
        option, setting = item.metadata["option"], item.metadata.get("setting")
        flags = ", ".join(f"`{flag}`" for flag in option.flags) + (f" / env `{option.envvar}`" if option.envvar else "")
        if item.default is dataclasses.MISSING:
            default = "required"
        else:
            default = "the stage's" if setting else option.shown_default or _default(item.default)
        kinds = [kind for kind in typing.get_args(hints[item.name]) or (hints[item.name],) if _is_enum(kind)]
        accepts = option.accepts.describe() if option.accepts else _choices(next(iter(kinds[0]))) if kinds else ""
        rows.append(f"| {flags} | {default} | {accepts} | {_cell(option.help)} | {f'`{setting}`' if setting else ''} |")
    header = ("| option | default | accepts | what it does | stage setting |\n"
              "|---|---|---|---|---|")
    return header + "\n" + "\n".join(rows) + "\n\nGenerated from `FinetuneOptions` in `finetune/options.py`."


def models() -> str:
    """Every short name `--model` takes (catalogue.py): its repository, family, size, licence, output, published
    accuracy and the CPU cost of an A4 page measured on a stand-in of its architecture (catalogue.CPU_COST)."""
    from vlmcli.catalogue import CHECKPOINTS, CPU_COST, CPU_COST_SOURCE

    rows = [f"| `{c.alias}` | `{c.repo}` | {c.family} | {c.parameters} | {c.license} | {_cell(c.output)} | "
            f"{_cell(c.accuracy) or '-'} | {_cost(CPU_COST.get(c.alias))} | {_cell(c.use)} |" for c in CHECKPOINTS]
    header = ("| `--model` | checkpoint | family | size | licence | writes | published accuracy | "
              "A4 page on a 2-core CPU: s, peak GiB | for |\n|---|---|---|---|---|---|---|---|---|")
    return (header + "\n" + "\n".join(rows) + f"\n\nGenerated from `vlmcli/catalogue.py`; `vlmcli models` prints it. "
            f"CPU cost: {CPU_COST_SOURCE}.")


def models_short() -> str:
    """The README's shorter table of the same checkpoints."""
    from vlmcli.catalogue import CHECKPOINTS, CPU_COST

    rows = [f"| `{c.alias}` | {c.parameters} | {_cell(c.output)} | {_cost(CPU_COST.get(c.alias))} | {_cell(c.use)} |"
            for c in CHECKPOINTS]
    header = "| `--model` | size | writes | A4 page on a 2-core CPU: s, peak GiB | for |\n|---|---|---|---|---|"
    return header + "\n" + "\n".join(rows) + "\n\nGenerated from `vlmcli/catalogue.py`; `vlmcli models` adds more."


def _is_enum(kind) -> bool:
    return isinstance(kind, type) and issubclass(kind, Enum)


def _cost(cost: dict | None) -> str:
    return f"{cost['page_s']:.0f} s, {cost['peak_rss_gb']:.1f} GiB" if cost else "not measured"


def _default(value) -> str:
    if isinstance(value, Enum):
        return f"`{value.value}`"
    return "-" if value is None else f"`{value}`"


def _choices(value) -> str:
    if isinstance(value, Enum):
        return " \\| ".join(f"`{member.value}`" for member in type(value))
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
