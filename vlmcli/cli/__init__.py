"""The command line (Typer): main.py assembles the app from one module per command group (ask.py: ask; read.py:
ocr; serve.py: serve; status.py: status; train.py: finetune, eval, export; cache.py: cache info, cache clear);
options.py holds the shared option aliases, exits.py the one place where errors become exit codes, console.py
what is drawn on stderr. Importing it never imports torch.
"""

from vlmcli.cli.main import app, main

__all__ = ["app", "main"]
