"""The `vlmcli` command: the Typer app, assembled here from the command modules (ask.py, read.py, serve.py,
status.py, train.py, cache.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from vlmcli import __version__
from vlmcli.cli import ask, cache, models, read, serve, status, train
from vlmcli.cli.exits import run_command


class _Group(TyperGroup):
    """Typer's group, ending every run through `run_command`: usage mistakes become one line and exit 2, a closed
    stdout exit 5, whether started from the console script or a test's CliRunner."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        return run_command(lambda: super(_Group, self).main(*args, standalone_mode=False, **kwargs),
                           standalone_mode)


app = typer.Typer(
    name="vlmcli", cls=_Group, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
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
app.command()(models.models)
app.command()(train.finetune)
app.command(name="eval")(train.evaluate)
app.command()(train.export)
app.add_typer(cache.app, name="cache")


def main() -> None:
    """Console-script entry point."""
    app()
