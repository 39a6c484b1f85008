"""/v1/chat/completions: OpenAI's messages → the checkpoint's chat messages and images; a `Generation` → OpenAI's
completion, or its stream of chunks (pure but for `complete`, which runs the model on the worker thread).

Images come only as data URIs (base64), never fetched from a URL: a server
that fetched would reach whatever the caller names. The images are decoded
and checked here, before the request queues, so a bad one costs no model time.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from vlmcli.errors import InputError
from vlmcli.inputs.images import load_image_bytes
from vlmcli.serve.errors import ApiError
from vlmcli.specs import GenerationSpec

ROLES = ("system", "user", "assistant")
_DATA_URI = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,(?P<data>.*)$", re.DOTALL)
# vlmcli's finish reasons as OpenAI's: a loop cut short or a timeout still ended the answer
FINISH_REASONS = {"stop": "stop", "length": "length", "repetition": "stop", "time": "length"}


class ChatRequest(BaseModel):
    """The fields vlmcli reads; the protocol's others (user, seed, tools...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[dict] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    stream_options: dict | None = None
    repetition_penalty: float | None = Field(default=None, gt=0)  # vLLM's extension, read by `--engine server`


@dataclass
class Conversation:
    messages: list[dict]  # the chat template's format: content parts {"type": "image"} and {"type": "text"}
    images: list = field(default_factory=list)  # PIL images, in the order of their parts


def conversation(request: ChatRequest, max_images: int) -> Conversation:
    """The request's messages for the checkpoint's chat template, its images decoded (400 for anything wrong)."""
    if request.n != 1:
        raise ApiError(400, "n must be 1: one answer per request", param="n")
    found = Conversation([])
    for index, message in enumerate(request.messages):
        role = message.get("role")
        if role not in ROLES:
            raise ApiError(400, f"messages[{index}].role must be one of {', '.join(ROLES)}", param="messages")
        found.messages.append({"role": role, "content": _parts(message.get("content"), index, found.images)})
    if len(found.images) > max_images:
        raise ApiError(413, f"{len(found.images)} images is over this server's limit of {max_images} per request",
                       code="too_many_images")
    return found


def generation_spec(request: ChatRequest, default_max_tokens: int, max_tokens_cap: int) -> GenerationSpec:
    """The request's decoding settings: greedy unless a temperature above 0 is asked for."""
    max_tokens = request.max_completion_tokens or request.max_tokens or default_max_tokens
    if max_tokens > max_tokens_cap:
        raise ApiError(400, f"max_tokens {max_tokens} is over this server's limit of {max_tokens_cap}",
                       param="max_tokens")
    stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    return GenerationSpec(max_new_tokens=max_tokens, temperature=request.temperature or 0.0,
                          top_p=request.top_p or 1.0, stop=tuple(s for s in stop if s),
                          repetition_penalty=request.repetition_penalty or 1.0)


def complete(loaded, chat: Conversation, spec: GenerationSpec, on_start=lambda: None, on_text=None):
    """Run the model on a conversation (on the worker thread); `on_start` once its inputs are built."""
    from vlmcli.model.generate import build_inputs, generate_from_inputs

    inputs = build_inputs(loaded, chat.messages, chat.images)
    on_start()
    return generate_from_inputs(loaded, inputs, spec, on_text)


def completion(completion_id: str, model: str, created: int, generation) -> dict:
    return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": generation.text},
                         "logprobs": None, "finish_reason": FINISH_REASONS[generation.finish_reason],
                         "vlmcli": _extension(generation)}],
            "usage": usage(generation)}


def chunk(completion_id: str, model: str, created: int, delta: dict, generation=None) -> dict:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
    if generation is not None:
        choice.update(finish_reason=FINISH_REASONS[generation.finish_reason], vlmcli=_extension(generation))
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [choice]}


def usage(generation) -> dict:
    return {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.new_tokens,
            "total_tokens": generation.prompt_tokens + generation.new_tokens}


def new_id() -> tuple[str, int]:
    return f"chatcmpl-{uuid.uuid4().hex}", int(time.time())


class StopFilter:
    """Streamed text up to the first stop string: text that may begin one is held back until it cannot."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self.stop, self.held, self.stopped = stop, "", False
        self._keep = max((len(s) for s in stop), default=1) - 1

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.held += piece
        found = [self.held.index(s) for s in self.stop if s in self.held]
        if found:
            self.stopped, out, self.held = True, self.held[:min(found)], ""
            return out
        cut = len(self.held) - self._keep
        out, self.held = self.held[:max(cut, 0)], self.held[max(cut, 0):]
        return out

    def flush(self) -> str:
        out, self.held = ("" if self.stopped else self.held), ""
        return out


def _extension(generation) -> dict:
    return {"finish_reason": generation.finish_reason, "image_tokens": generation.image_tokens,
            "seconds": round(generation.seconds, 3)}


def _parts(content, index: int, images: list) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise ApiError(400, f"messages[{index}].content must be a string or a list of parts", param="messages")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            images.append(_image(part.get("image_url"), index))
            parts.append({"type": "image"})
        else:
            raise ApiError(400, f"messages[{index}]: content parts must be text or image_url (got {kind!r})",
                           param="messages")
    return parts


def _image(image_url, index: int):
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise ApiError(400, f"messages[{index}]: image_url needs a url", param="messages")
    match = _DATA_URI.match(url)
    if match is None:
        scheme = url.split(":", 1)[0] if ":" in url else "a bare string"
        raise ApiError(400, f"messages[{index}]: only data URIs (data:image/...;base64,...) are accepted, not "
                            f"{scheme} URLs: this server fetches nothing", param="messages", code="remote_url")
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"messages[{index}]: the image's base64 does not decode", param="messages",
                       code="bad_base64") from None
    try:
        return load_image_bytes(data, f"messages[{index}] image")
    except InputError as error:
        raise ApiError(400, error.message, param="messages", code="not_an_image") from None
