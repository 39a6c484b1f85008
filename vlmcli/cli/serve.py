"""`vlmcli serve`: options → a ServeSpec → the server (vlmcli/serve, imported inside the command, so `--help`
imports neither FastAPI nor torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vlmcli.cli.console import RichProgress, print_note
from vlmcli.cli.exits import reporting_errors
from vlmcli.cli.options import PageTimeoutOpt, number, run_spec, with_model_options
from vlmcli.specs import API_KEY_ENV_VAR, MAX_NEW_TOKENS_RANGE, Range

LIMITS = "Limits"


@with_model_options
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on. Any other than loopback needs --api-key.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(
        **number(Range(0, 65535)), help="Port (0: any free one, printed).")] = 8000,
    api_key: Annotated[Optional[str], typer.Option(
        envvar=API_KEY_ENV_VAR, show_default=False,
        help=f"The key every API call must carry (Authorization: Bearer KEY); or set {API_KEY_ENV_VAR}, which ps "
             "does not show.")] = None,
    max_waiting: Annotated[int, typer.Option(
        **number(Range(1, 100_000)), rich_help_panel=LIMITS,
        help="Requests that may wait for the model; past them, 429.")] = 16,
    timeout: Annotated[float, typer.Option(
        **number(Range(1, 7 * 24 * 3600), float), rich_help_panel=LIMITS,
        help="Seconds a request may take, waiting included (504 past it).")] = 600,
    max_body_mb: Annotated[float, typer.Option(
        **number(Range(0.001, 1 << 20), float), rich_help_panel=LIMITS,
        help="Largest request body, in MiB (413 past it).")] = 32,
    max_pages: Annotated[int, typer.Option(
        **number(Range(1, 100_000)), rich_help_panel=LIMITS,
        help="Most pages of one document, and images of one chat request.")] = 100,
    max_tokens: Annotated[int, typer.Option(
        **number(MAX_NEW_TOKENS_RANGE), rich_help_panel=LIMITS,
        help="Most tokens one request may ask for.")] = 8192,
    page_timeout: PageTimeoutOpt = None,
    work_dir: Annotated[Optional[Path], typer.Option(
        readable=False, help="Folder for uploads and each document's manifest (default: a temporary one).")] = None,
    *, run_options: dict[str, Any],
) -> None:
    """Serve the model: an OpenAI-compatible API (/v1/chat/completions, /v1/models), /v1/ocr and /v1/ask for
    documents, and a page to use them at /.  Example: vlmcli serve --model smolvlm-256m"""
    with reporting_errors(), RichProgress() as progress:
        from vlmcli.serve.config import ServeSpec
        from vlmcli.serve.server import serve as run_server

        run, _ = run_spec(run_options, page_timeout=page_timeout)
        spec = ServeSpec(run=run, max_new_tokens=run_options["max_new_tokens"], host=host, port=port,
                         api_key=api_key, max_waiting=max_waiting, timeout_s=timeout, max_body_mb=max_body_mb,
                         max_pages=max_pages, max_tokens=max_tokens, work_dir=work_dir)

        def ready(url: str) -> None:
            progress.stop()
            print_note(f"serving {run.model.model_id} at {url} (OpenAI API at {url}v1; Ctrl-C stops)")

        run_server(spec, progress, ready)
