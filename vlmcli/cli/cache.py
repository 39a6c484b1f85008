"""`vlmcli cache info` and `vlmcli cache clear`: the page cache that `ask` and `ocr` share (vlmcli/cache/store.py).

The cache module is imported inside the commands, so `--help` stays light.
"""

from __future__ import annotations

import typer

from vlmcli.cli.console import print_note

app = typer.Typer(no_args_is_help=True, help="Show or empty the page cache (page texts and image features that "
                                            "ask and ocr keep between runs).")


@app.command()
def info() -> None:
    """Where the page cache is, and what it holds."""
    from vlmcli.cache.store import PageCache

    with PageCache() as cache:
        facts = cache.info()
    typer.echo(f"path: {facts['path']}")
    typer.echo(f"size: {_mib(facts['bytes_on_disk'])}")
    if "problem" in facts:
        typer.echo(f"problem: {facts['problem']}")
        print_note("ask and ocr set a damaged cache aside and start a new one; `vlmcli cache clear` removes it")
        return
    if "files" not in facts:
        typer.echo("empty: no page has been cached yet")
        return
    typer.echo(f"files: {facts['files']}")
    typer.echo(f"pages with a text layer: {facts['text_layer_pages']}")
    typer.echo(f"pages transcribed by a model: {facts['ocr_pages']}")
    typer.echo(f"pages read by a first pass (words and boxes): {facts['first_pass_pages']}")
    typer.echo(f"pages with image features: {facts['feature_pages']} ({_mib(facts['feature_bytes'])})")


@app.command()
def clear() -> None:
    """Delete the page cache (it is rebuilt as pages are read again)."""
    from vlmcli.cache.store import FILE_NAME, cache_dir, clear as clear_cache

    freed = clear_cache()
    if freed is None:
        typer.echo(f"no page cache at {cache_dir() / FILE_NAME}; nothing to remove")
    else:
        typer.echo(f"removed {cache_dir() / FILE_NAME} ({_mib(freed)})")


def _mib(size_bytes: int) -> str:
    return f"{size_bytes / (1 << 20):.1f} MiB"
