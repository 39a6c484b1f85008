"""`vlmcli models`: the checkpoints vlmcli names (aliases for --model) and the families that read them, with what
each writes, its size, licence, published accuracy and the CPU cost of an A4 page measured here (stdout: a table,
or JSON Lines)."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from typing import Annotated

import typer

from vlmcli.catalogue import CHECKPOINTS, CPU_COST, CPU_COST_SOURCE


class ModelsFormat(str, Enum):
    table = "table"
    json = "json"


def models(output_format: Annotated[ModelsFormat, typer.Option("--format", "-f", help="table, or json for scripts.")]
           = ModelsFormat.table) -> None:
    """The checkpoints and model families vlmcli knows: pass an alias to --model.  Example: vlmcli models"""
    rows = [{**dataclasses.asdict(checkpoint), "cpu_a4_page": CPU_COST.get(checkpoint.alias)}
            for checkpoint in CHECKPOINTS]
    if output_format is ModelsFormat.json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("alias", "family", "size", "licence", "writes", "published accuracy", "CPU s / A4 page",
                   "peak GiB"):
        table.add_column(column, overflow="fold")
    for row in rows:
        cost = row["cpu_a4_page"] or {}
        table.add_row(row["alias"], row["family"], row["parameters"], row["license"], row["output"],
                      row["accuracy"] or "-", f"{cost['page_s']:.1f}" if cost else "not measured",
                      f"{cost['peak_rss_gb']:.1f}" if cost else "-")
    console = Console(width=160)
    console.print(table)
    console.print(f"CPU cost: {CPU_COST_SOURCE}. Any other image-text-to-text checkpoint transformers ships runs "
                  "with its own chat template (the generic family); -v names the family a run uses.",
                  soft_wrap=True)
