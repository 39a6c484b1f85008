"""Exit codes and the user-facing errors that carry them (stdlib only).

A `VlmcliError` is a mistake the user can fix: it is printed as one line on
stderr (plus a hint) and the process exits with its code. Anything else is a
bug and is allowed to crash with a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Stable process exit codes (documented in the README)."""

    ok = 0
    usage = 2  # bad flags or values (Typer uses 2 for its own usage errors too)
    input = 3  # missing, unreadable, corrupt or unsupported input file
    encrypted = 4  # PDF needs a (correct) --password
    output = 5  # output path not writable
    dependency = 6  # a system tool or package is missing, or the model is not available offline
    refused = 7  # refused for safety: remote code, pickle-only weights
    resource = 8  # out of memory with no usable output
    model = 9  # the checkpoint cannot be loaded or is not a supported family
    partial = 10  # several inputs: some succeeded, some failed (see stderr)
    diverged = 11  # training stopped on a non-finite loss
    checkpoint = 12  # a checkpoint to resume from is incomplete, corrupt or foreign
    interrupted = 130  # Ctrl-C (after the manifest is flushed)
    terminated = 143  # SIGTERM, handled like Ctrl-C


class VlmcliError(Exception):
    """An error the user can fix. `hint` says how.

    Each subclass names its exit code in its class statement. `category` names
    the kind of failure in the failure report (docling's vocabulary where it
    fits), so a batch's failures can be counted by cause; it is the exit code's
    name unless the class says otherwise.
    """

    exit_code: ExitCode = ExitCode.input
    category: str = "input"

    def __init_subclass__(cls, exit_code: ExitCode | None = None, category: str | None = None, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code, cls.category = exit_code, exit_code.name
        if category is not None:
            cls.category = category

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(VlmcliError, exit_code=ExitCode.usage):
    """A bad option or value, or a page range past the end."""


class InputError(VlmcliError):
    """An input file that is missing, unreadable, corrupt, truncated, unsupported or over a limit."""


class RasterizerError(InputError, category="backend_failure"):
    """poppler crashed, exited non-zero, or returned something other than the one page asked for."""


class OcrEngineError(InputError, category="backend_failure"):
    """A classic OCR engine (the first pass: Tesseract, RapidOCR) crashed, failed, or answered garbage on a page."""


class EncryptedPdfError(VlmcliError, exit_code=ExitCode.encrypted):
    """A PDF whose password is missing or wrong."""


class OutputError(VlmcliError, exit_code=ExitCode.output):
    """Results cannot be written where the user asked."""


class DependencyError(VlmcliError, exit_code=ExitCode.dependency):
    """A system tool, package, device or offline model that the run needs is not there."""


class ServerError(DependencyError, category="backend_failure"):
    """An engine's server that cannot be reached, refuses the run, or still fails a page (429, 5xx, timeouts)
    after its retries."""


class RefusedError(VlmcliError, exit_code=ExitCode.refused, category="policy"):
    """A checkpoint refused for safety: it needs remote code, or has only pickle weights."""


class ResourceError(VlmcliError, exit_code=ExitCode.resource, category="out_of_memory"):
    """Out of memory with no usable output."""


class PageTimeoutError(ResourceError, category="timeout"):
    """A page went past --page-timeout (rendering or generation)."""


class CrashError(VlmcliError, exit_code=ExitCode.resource, category="crash"):
    """Reading a page crashed: the process reading it died each time it was tried (out of memory, a native
    crash), or it raised an error vlmcli does not expect (a bug). A Ray run's pages become these; in a local run
    the process that dies is vlmcli itself."""


class ModelError(VlmcliError, exit_code=ExitCode.model):
    """The checkpoint cannot be loaded, or is not of a supported family."""


class TrainingDiverged(VlmcliError, exit_code=ExitCode.diverged):
    """Training stopped on a non-finite loss."""


class CheckpointError(VlmcliError, exit_code=ExitCode.checkpoint):
    """A checkpoint to resume from is incomplete, damaged, foreign, or holds more than data in a pickle."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by the CLI's handler so that it unwinds (and cleans up) like Ctrl-C."""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (library messages run on), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
