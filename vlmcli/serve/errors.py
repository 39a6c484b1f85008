"""The one place where errors become HTTP statuses, in OpenAI's error shape:
`{"error": {"message", "type", "param", "code"}}`; the server keeps serving after every one of them.

vlmcli's typed errors map by class (most specific first); the server's own
refusals (a full queue, a missing key, a body over the cap) are `ApiError`s.
"""

from __future__ import annotations

from vlmcli.errors import (
    DependencyError,
    EncryptedPdfError,
    InputError,
    ModelError,
    OutputError,
    PageTimeoutError,
    RefusedError,
    ResourceError,
    UsageError,
    VlmcliError,
)

# Most specific first: PageTimeoutError is a ResourceError, a RasterizerError an InputError.
STATUSES: tuple[tuple[type[VlmcliError], int], ...] = (
    (PageTimeoutError, 504),
    (ResourceError, 503),
    (EncryptedPdfError, 400),
    (InputError, 400),
    (UsageError, 400),
    (RefusedError, 403),
    (DependencyError, 503),
    (ModelError, 500),
    (OutputError, 500),
)
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 415: "invalid_request_error",
               429: "rate_limit_error", 504: "timeout_error"}


class ApiError(Exception):
    """A request the server refuses or cannot serve, with its status (and, for 429, when to come back)."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.retry_after_s = retry_after_s


def from_vlmcli(error: VlmcliError) -> ApiError:
    """vlmcli's error as the server answers it (the hint joins the message, as on the command line)."""
    status = next((code for kind, code in STATUSES if isinstance(error, kind)), 500)
    message = f"{error.message} (hint: {error.hint})" if error.hint else error.message
    return ApiError(status, message, code=error.category)


def body(error: ApiError) -> dict:
    kind = ERROR_TYPES.get(error.status, "server_error" if error.status >= 500 else "invalid_request_error")
    return {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code}}


def headers(error: ApiError) -> dict[str, str]:
    found = {"Retry-After": str(error.retry_after_s)} if error.retry_after_s is not None else {}
    if error.status == 401:
        found["WWW-Authenticate"] = "Bearer"
    return found
