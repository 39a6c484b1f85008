"""The `vlmcli` command: the Typer app, assembled here from the command modules (ask.py, read.py, serve.py,
status.py, train.py, cache.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from vlmcli import __version__
from vlmcli.cli import ask, cache, read, serve, status, train

app = typer.Typer(
    name="vlmcli", no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
    help="Read documents with a vision-language model: OCR of print and handwriting, questions about images and PDFs.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vlmcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Read documents with a vision-language model."""


app.command()(ask.ask)
app.command()(read.ocr)
app.command()(serve.serve)
app.command()(status.status)
app.command()(train.finetune)
app.command(name="eval")(train.evaluate)
app.command()(train.export)
app.add_typer(cache.app, name="cache")


def main() -> None:
    """Console-script entry point."""
    app()
