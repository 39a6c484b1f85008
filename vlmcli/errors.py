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

    `category` names the kind of failure in the failure report (docling's
    vocabulary where it fits), so a batch's failures can be counted by cause.
    """

    exit_code: ExitCode = ExitCode.input
    category: str = "input"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(VlmcliError):
    exit_code = ExitCode.usage
    category = "usage"


class InputError(VlmcliError):
    exit_code = ExitCode.input


class EncryptedPdfError(VlmcliError):
    exit_code = ExitCode.encrypted
    category = "encrypted"


class OutputError(VlmcliError):
    exit_code = ExitCode.output
    category = "output"


class DependencyError(VlmcliError):
    exit_code = ExitCode.dependency
    category = "dependency"


class RefusedError(VlmcliError):
    exit_code = ExitCode.refused
    category = "policy"


class ResourceError(VlmcliError):
    exit_code = ExitCode.resource
    category = "out_of_memory"


class PageTimeoutError(ResourceError):
    """A page went past --page-timeout (rendering or generation)."""

    category = "timeout"


class RasterizerError(InputError):
    """poppler crashed, exited non-zero, or returned something other than the one page asked for."""

    category = "backend_failure"


class ModelError(VlmcliError):
    exit_code = ExitCode.model
    category = "model"


class TrainingDiverged(VlmcliError):
    exit_code = ExitCode.diverged
    category = "diverged"


class CheckpointError(VlmcliError):
    exit_code = ExitCode.checkpoint
    category = "checkpoint"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by the CLI's handler so that it unwinds (and cleans up) like Ctrl-C."""
