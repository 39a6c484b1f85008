"""A small client of the OpenAI chat-completions protocol (httpx), for `--engine server`.

httpx rather than the `openai` package: a page is one POST, and the retry loop
must be ours, so that each try is counted (the failure record's `attempts`),
bounded by the page's deadline, and only repeated where repeating is safe
(429, 5xx, timeouts, lost connections; a stream only before its first token).
vlmcli serve's extension fields (`vlmcli` in a model and in a choice: the image
tokens, the input edge, a loop that ended generation) are read where a server
sends them; any other server works without them.
"""

from __future__ import annotations

import base64
import io
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import Image

from vlmcli.errors import DependencyError, InputError, ServerError, UsageError, VlmcliError
from vlmcli.specs import EngineSpec, GenerationSpec

INSTALL_HINT = "pip install 'vlmcli[serve]'"
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_TIMEOUT_S = 600.0  # one request, when --page-timeout does not set it: a long page on a slow server
CONNECT_TIMEOUT_S = 10.0
FIRST_BACKOFF_S, MAX_BACKOFF_S = 0.5, 30.0


@dataclass(frozen=True)
class RemoteGeneration:
    """One chat completion, with the fields `pipeline.results.page_result` reads from a `Generation`."""

    text: str
    image_tokens: int
    prompt_tokens: int
    new_tokens: int
    seconds: float
    finish_reason: str  # vlmcli's: "stop" | "length" | "repetition" | "time"


def image_part(image: Image.Image) -> dict:
    """An image as an OpenAI content part: a PNG data URI (lossless, so the server sees these very pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": url}}


def family_messages(family, images: list[Image.Image], text: str | None) -> list[dict]:
    """The turns a family's card asks with (model/families: its system turn, the images and the instruction in its
    order, the image alone where the instruction is None), images as data URIs."""
    return family.messages_with(text, images, image_part)


class ChatClient:
    """Chat completions against one server; shared by the engine's threads (httpx's client is thread-safe)."""

    def __init__(self, spec: EngineSpec, timeout_s: float | None = None, transport=None) -> None:
        httpx = _import_httpx()
        if not spec.server_url:
            raise UsageError("--engine server needs --server-url", hint="e.g. --server-url http://127.0.0.1:8000/v1")
        self.spec, self.base_url = spec, spec.server_url.rstrip("/")
        headers = {"Authorization": f"Bearer {spec.api_key}"} if spec.api_key else {}
        self._timeout_s = timeout_s or DEFAULT_TIMEOUT_S
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(self._timeout_s, connect=CONNECT_TIMEOUT_S),
                                  transport=transport)  # a test's fake server, else the network
        self._httpx = httpx

    def close(self) -> None:
        self._http.close()

    def models(self) -> list[dict]:
        """The server's models (`GET /models`), each a dict with at least an `id`."""
        response = self._send("GET", "/models", None, deadline_s=None)
        return list(response.json().get("data", []))

    def chat(self, model: str, messages: list[dict], spec: GenerationSpec,
             on_text: Callable[[str], None] | None = None, deadline_s: float | None = None,
             keep_special_tokens: bool = False) -> RemoteGeneration:
        """One completion under `spec` (max tokens, temperature, stop, repetition penalty), streamed to `on_text`
        when given; retried as the module says, within `deadline_s` (`time.monotonic()`). `keep_special_tokens`:
        the answer's special tokens are its text (DocTags, grounding tags), so the server is asked to keep them."""
        body = {"model": model, "messages": messages, "max_tokens": spec.max_new_tokens,
                "temperature": spec.temperature, "top_p": spec.top_p}
        if keep_special_tokens:
            body["skip_special_tokens"] = False  # vLLM's extension; vlmcli serve keeps them as its model's family says
        if spec.stop:
            body["stop"] = list(spec.stop)
        if spec.repetition_penalty != 1.0:
            body["repetition_penalty"] = spec.repetition_penalty  # an extension vLLM and vlmcli serve read
        started = time.perf_counter()
        if on_text is None:
            payload = self._send("POST", "/chat/completions", body, deadline_s).json()
            return _generation(payload, payload["choices"][0]["message"].get("content") or "", started)
        return self._stream(body, on_text, deadline_s, started)

    def _stream(self, body: dict, on_text: Callable[[str], None], deadline_s: float | None,
                started: float) -> RemoteGeneration:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        pieces: list[str] = []
        last: dict = {}
        for chunk in self._events(body, deadline_s):
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    pieces.append(piece)
                    on_text(piece)
                if choice.get("finish_reason"):
                    last = {**last, "choices": [choice]}
            if chunk.get("usage"):
                last = {**last, "usage": chunk["usage"]}
        return _generation(last, "".join(pieces), started)

    def _events(self, body: dict, deadline_s: float | None) -> Iterator[dict]:
        """The stream's JSON events; the request is retried only until the first byte of the answer."""
        answering = False
        for attempt in range(1, self.spec.attempts + 1):
            try:
                with self._http.stream("POST", self.base_url + "/chat/completions", json=body,
                                       timeout=self._timeout(deadline_s)) as response:
                    if response.status_code != 200:
                        response.read()
                        self._check(response, attempt, deadline_s)
                        continue
                    for line in response.iter_lines():
                        if line.startswith("data:"):
                            data = line[5:].strip()
                            if data == "[DONE]":
                                return
                            answering = True
                            yield json.loads(data)
                    return
            except self._httpx.TransportError as exc:
                if answering:  # a second try would repeat the text already handed on
                    raise ServerError(f"{self.base_url}: the answer broke off ({type(exc).__name__}: {exc})") from None
                self._wait_or_raise(attempt, deadline_s, f"{type(exc).__name__}: {exc}", None)
        raise AssertionError("unreachable: the last attempt raises")

    def _send(self, method: str, path: str, body: dict | None, deadline_s: float | None):
        for attempt in range(1, self.spec.attempts + 1):
            try:
                response = self._http.request(method, self.base_url + path, json=body,
                                              timeout=self._timeout(deadline_s))
            except self._httpx.TransportError as exc:
                self._wait_or_raise(attempt, deadline_s, f"{type(exc).__name__}: {exc}", None)
                continue
            if response.status_code == 200:
                return response
            self._check(response, attempt, deadline_s)
        raise AssertionError("unreachable: the last attempt raises")

    def _check(self, response, attempt: int, deadline_s: float | None) -> None:
        """Wait before the next try of a retried status; raise the typed error of any other."""
        message = _error_message(response)
        if response.status_code in RETRIED_STATUSES:
            self._wait_or_raise(attempt, deadline_s, f"HTTP {response.status_code}: {message}",
                                response.headers.get("retry-after"))
            return
        raise _refusal(response.status_code, message, self.base_url)

    def _wait_or_raise(self, attempt: int, deadline_s: float | None, what: str, retry_after: str | None) -> None:
        delay_s = _backoff_s(attempt, retry_after)
        out_of_time = deadline_s is not None and time.monotonic() + delay_s >= deadline_s
        if attempt >= self.spec.attempts or out_of_time:
            error = ServerError(f"{self.base_url}: {what} (after {attempt} tries)",
                                hint="check that the server is up and not overloaded; lower --concurrency")
            error.attempts = attempt  # the page's failure record counts them
            raise error
        time.sleep(delay_s)

    def _timeout(self, deadline_s: float | None) -> float:
        if deadline_s is None:
            return self._timeout_s
        return max(0.001, min(self._timeout_s, deadline_s - time.monotonic()))


def _generation(payload: dict, text: str, started: float) -> RemoteGeneration:
    choice = (payload.get("choices") or [{}])[0]
    extension = choice.get("vlmcli") or {}
    usage = payload.get("usage") or {}
    finish = extension.get("finish_reason") or choice.get("finish_reason") or "stop"
    return RemoteGeneration(text=text.strip(), image_tokens=int(extension.get("image_tokens", 0)),
                            prompt_tokens=int(usage.get("prompt_tokens", 0)),
                            new_tokens=int(usage.get("completion_tokens", 0)),
                            seconds=time.perf_counter() - started, finish_reason=finish)


def _backoff_s(attempt: int, retry_after: str | None) -> float:
    """Exponential backoff with full jitter; a server's Retry-After (seconds) when it gives one."""
    if retry_after:
        try:
            return min(MAX_BACKOFF_S, max(0.0, float(retry_after)))
        except ValueError:
            pass
    return random.uniform(0, min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (attempt - 1)))


def _error_message(response) -> str:
    try:
        error = response.json().get("error")
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or response.reason_phrase)


def _refusal(status: int, message: str, base_url: str) -> VlmcliError:
    """A status that another try would not change, as vlmcli's error for it."""
    if status in (401, 403):
        return UsageError(f"{base_url}: the server refused the API key ({message})",
                          hint="pass --api-key, or set VLMCLI_API_KEY")
    if status == 404:
        return ServerError(f"{base_url}: {message}", hint="check --server-url (up to /v1) and --model")
    if status in (400, 413, 415, 422):
        return InputError(f"the server refused the page: {message}")
    return ServerError(f"{base_url}: HTTP {status}: {message}")


def _import_httpx():
    try:
        import httpx
    except ImportError:
        raise DependencyError("--engine server needs httpx, which is not installed", hint=INSTALL_HINT) from None
    return httpx
