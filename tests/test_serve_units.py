"""The pure parts of the server and of `--engine server`: stop strings in a stream, request checks, the one
error-to-status mapping, and the client's retries (httpx's MockTransport as the server)."""

from __future__ import annotations

import json

import pytest

from vlmcli.errors import EncryptedPdfError, InputError, PageTimeoutError, ServerError, UsageError
from vlmcli.specs import EngineSpec, GenerationSpec

httpx = pytest.importorskip("httpx", reason="needs the vlmcli[serve] extra")
pytest.importorskip("fastapi", reason="needs the vlmcli[serve] extra")


def test_a_stream_stops_before_a_stop_string_split_across_pieces():
    from vlmcli.serve.chat import StopFilter

    stop = StopFilter(("END",))
    out = [stop.feed(piece) for piece in ("Total 4", "2 E", "N", "D and more")] + [stop.flush()]
    assert "".join(out) == "Total 42 " and stop.stopped
    plain = StopFilter(())
    assert [plain.feed(piece) for piece in ("a", "b")] + [plain.flush()] == ["a", "b", ""]


def test_requests_are_checked_before_they_queue():
    from vlmcli.serve.chat import ChatRequest, conversation, generation_spec
    from vlmcli.serve.errors import ApiError

    with pytest.raises(ApiError) as refused:
        conversation(ChatRequest(messages=[{"role": "tool", "content": "x"}]), max_images=4)
    assert refused.value.status == 400
    with pytest.raises(ApiError) as refused:
        conversation(ChatRequest(messages=[{"role": "user", "content": "x"}], n=2), max_images=4)
    assert refused.value.param == "n"
    spec = generation_spec(ChatRequest(messages=[{"role": "user", "content": "x"}], stop="##", temperature=0.5),
                           default_max_tokens=64, max_tokens_cap=128)
    assert (spec.max_new_tokens, spec.stop, spec.temperature) == (64, ("##",), 0.5)
    with pytest.raises(ApiError):
        generation_spec(ChatRequest(messages=[{"role": "user", "content": "x"}], max_tokens=500), 64, 128)


@pytest.mark.parametrize("error, status", [(InputError("x"), 400), (UsageError("x"), 400),
                                           (EncryptedPdfError("x"), 400), (PageTimeoutError("x"), 504),
                                           (ServerError("x"), 503)])
def test_vlmcli_errors_map_to_one_status_each(error, status):
    from vlmcli.serve.errors import body, from_vlmcli

    mapped = from_vlmcli(error)
    assert mapped.status == status and body(mapped)["error"]["code"] == error.category


def _client(responses: list, attempts: int = 3, seen: list | None = None):
    from vlmcli.pipeline.engines.openai_client import ChatClient

    def handle(request):
        if seen is not None:
            seen.append(request)
        answer = responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    spec = EngineSpec(server_url="http://server.test/v1", api_key="k", attempts=attempts)
    return ChatClient(spec, transport=httpx.MockTransport(handle))


def _completion(text: str = "hello") -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"content": text}, "finish_reason": "length",
                                                  "vlmcli": {"finish_reason": "repetition", "image_tokens": 7}}],
                                     "usage": {"prompt_tokens": 9, "completion_tokens": 3}})


def test_the_client_retries_429_5xx_and_lost_connections_then_answers(monkeypatch):
    from vlmcli.pipeline.engines import openai_client

    slept = []
    monkeypatch.setattr(openai_client.time, "sleep", slept.append)
    seen = []
    client = _client([httpx.Response(429, headers={"retry-after": "2"}, json={"error": {"message": "busy"}}),
                      httpx.ConnectError("refused"), httpx.Response(503, text="down"), _completion()],
                     attempts=4, seen=seen)
    answer = client.chat("m", [{"role": "user", "content": "x"}], GenerationSpec(max_new_tokens=3))
    assert (answer.text, answer.finish_reason, answer.image_tokens, answer.new_tokens) == ("hello", "repetition", 7, 3)
    assert slept[0] == 2.0 and len(slept) == 3  # the server's Retry-After first, then backoff
    assert seen[0].headers["authorization"] == "Bearer k"
    assert json.loads(seen[-1].content)["max_tokens"] == 3


def test_the_client_gives_up_after_its_tries_and_does_not_retry_a_refusal(monkeypatch):
    from vlmcli.pipeline.engines import openai_client

    monkeypatch.setattr(openai_client.time, "sleep", lambda seconds: None)
    with pytest.raises(ServerError) as failed:
        _client([httpx.Response(500, text="boom")] * 3).chat("m", [], GenerationSpec())
    assert failed.value.attempts == 3 and "after 3 tries" in failed.value.message
    refused = [httpx.Response(400, json={"error": {"message": "not an image"}}), _completion()]
    with pytest.raises(InputError, match="not an image"):
        _client(refused).chat("m", [], GenerationSpec())
    with pytest.raises(UsageError, match="API key"):
        _client([httpx.Response(401, json={"error": {"message": "bad key"}})]).models()


def test_engine_server_picks_the_served_model():
    from vlmcli.pipeline.engines.server import served_model
    from vlmcli.progress import NullProgress
    from vlmcli.specs import DEFAULT_MODEL

    models = [{"id": "/models/mine"}]
    assert served_model(models, DEFAULT_MODEL, "url", NullProgress())["id"] == "/models/mine"
    assert served_model(models, "/models/mine", "url", NullProgress())["id"] == "/models/mine"
    with pytest.raises(UsageError, match="serves: /models/mine"):
        served_model(models, "other", "url", NullProgress())
