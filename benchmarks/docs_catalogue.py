"""The docs' tables that come from vlmcli's own definitions rather than from a benchmark's output: every run
option (specs/options.py `RunOptions`) and every named checkpoint (catalogue.py), so neither is listed by hand."""

from __future__ import annotations

import dataclasses
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


def models() -> str:
    """Every short name `--model` takes (catalogue.py): its repository, family, size, licence and output."""
    from vlmcli.catalogue import CHECKPOINTS

    rows = [f"| `{c.alias}` | `{c.repo}` | {c.family} | {c.parameters} | {c.license} | {_cell(c.output)} | "
            f"{_cell(c.use)} |" for c in CHECKPOINTS]
    header = ("| `--model` | checkpoint | family | size | licence | writes | for |\n"
              "|---|---|---|---|---|---|---|")
    return header + "\n" + "\n".join(rows) + "\n\nGenerated from `vlmcli/catalogue.py`; `vlmcli models` prints it."


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
