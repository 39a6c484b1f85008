"""`vlmcli status OUT`: pages done, failed and pending in an output folder, over every run and shard writing
into it, read from their manifests (stdout: a table, or one JSON object)."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vlmcli.cli.console import print_note
from vlmcli.cli.exits import reporting_errors


class StatusFormat(str, Enum):
    table = "table"
    json = "json"


def status(
    out: Annotated[Path, typer.Argument(
        readable=False, help="The -o folder of `vlmcli ocr` (one run, or the shards of a job).")],
    output_format: Annotated[StatusFormat, typer.Option("--format", "-f", help="table, or json for scripts.")]
    = StatusFormat.table,
) -> None:
    """Pages done / failed / pending in an OCR output folder, across shards.  Example: vlmcli status out/"""
    with reporting_errors():
        from vlmcli.jobs.status import job_status

        report = job_status(out)
    if output_format is StatusFormat.json:
        typer.echo(json.dumps(dataclasses.asdict(report)))
        return
    rows = [(row.shard.replace("-of-", "/") if row.shard else row.name, row.counts) for row in report.manifests]
    rows.append(("all (each page once)", report.total))
    width = max(len(name) for name, _ in rows)
    typer.echo(f"{'run':<{width}}  {'planned':>8}  {'done':>8}  {'failed':>8}  {'pending':>8}  {'bad inputs':>10}")
    for name, counts in rows:
        typer.echo(f"{name:<{width}}  {counts.planned:>8}  {counts.done:>8}  {counts.failed:>8}  {counts.pending:>8}"
                   f"  {counts.failed_inputs:>10}")
    if report.dropped_lines:
        print_note(f"{report.dropped_lines} torn manifest line(s) skipped (a run killed mid-write, or one running)")
