"""`vlmcli serve` for real: a subprocess on loopback with the tiny checkpoint, driven by the `openai` client (chat,
streaming, models) and plain HTTP (documents, bad requests, load); `ocr --engine server` against it.

One server for the module (with a key, small caps so that the limits are reachable), few tokens per answer.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import draw_page
from typer.testing import CliRunner

from tools.serving import running_server
from vlmcli.cli import app

httpx = pytest.importorskip("httpx", reason="the serve tests need the vlmcli[serve] extra")
pytest.importorskip("fastapi", reason="the serve tests need the vlmcli[serve] extra")
openai = pytest.importorskip("openai", reason="the serve tests drive the server with the openai client")

pytestmark = [pytest.mark.model, pytest.mark.serve]
KEY = "test-key-0123"
TOKENS = 8
MAX_WAITING = 8
SERVER_ARGS = ("--api-key", KEY, "--max-new-tokens", str(TOKENS), "--max-waiting", str(MAX_WAITING),
               "--max-body-mb", "1", "--max-pages", "6")


@pytest.fixture(scope="module")
def server(tiny_idefics3, tmp_path_factory):
    with running_server(tiny_idefics3, tmp_path_factory.mktemp("serve"), *SERVER_ARGS) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "v1", api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as session:
        yield session


@pytest.fixture(scope="module")
def loaded(tiny_idefics3):
    from vlmcli import model
    from vlmcli.specs import DType, ModelSpec, SplitSpec

    return model.load(ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True), SplitSpec())


def _png(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _image_message(url: str, text: str = "Read this.") -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": text}]}]


def test_models_list_the_checkpoint_with_what_engines_need(client, tiny_idefics3):
    models = client.models.list().data
    assert [m.id for m in models] == [str(tiny_idefics3)]
    assert models[0].model_extra["vlmcli"]["max_input_px"] == 64  # the test checkpoint's processor edge


def test_chat_answers_as_vlmcli_generates(client, tiny_idefics3, loaded):
    """The server's answer is the model's own greedy answer to the same messages and pixels."""
    from vlmcli.model.generate import generate
    from vlmcli.prompts import user_messages
    from vlmcli.specs import GenerationSpec

    page = draw_page((120, 80), "Total 42")
    reply = client.chat.completions.create(model=str(tiny_idefics3), messages=_image_message(_png(page)),
                                           max_tokens=TOKENS, temperature=0)
    local = generate(loaded, user_messages("Read this.", 1), [page], GenerationSpec(max_new_tokens=TOKENS))
    assert reply.choices[0].message.content == local.text
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens == local.new_tokens and reply.usage.prompt_tokens == local.prompt_tokens


def test_streaming_gives_the_same_text_in_pieces_then_usage(client, tiny_idefics3):
    messages = _image_message(_png(draw_page((120, 80), "Hello")))
    whole = client.chat.completions.create(model=str(tiny_idefics3), messages=messages, max_tokens=TOKENS)
    chunks = list(client.chat.completions.create(model=str(tiny_idefics3), messages=messages, max_tokens=TOKENS,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == whole.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2  # it arrived in pieces
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stop_ends_the_text_before_the_stop_string(client, tiny_idefics3):
    messages = [{"role": "user", "content": "Say something."}]
    whole = client.chat.completions.create(model=str(tiny_idefics3), messages=messages, max_tokens=TOKENS)
    text = whole.choices[0].message.content
    stop = text[len(text) // 2:len(text) // 2 + 2]
    cut = client.chat.completions.create(model=str(tiny_idefics3), messages=messages, max_tokens=TOKENS, stop=[stop])
    assert cut.choices[0].message.content == text[:text.index(stop)] and cut.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model=str(tiny_idefics3), messages=messages, max_tokens=TOKENS,
                                              stop=[stop], stream=True)
    pieces = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert pieces.strip() == text[:text.index(stop)].strip()


def _too_big_chunks():
    for _ in range(3):
        yield b"x" * (512 * 1024)


BAD_REQUESTS = {
    "malformed JSON": (dict(content=b'{"messages": [', headers={"content-type": "application/json"}), 400),
    "bad base64": (dict(json={"messages": _image_message("data:image/png;base64,@@not base64@@")}), 400),
    "not an image": (dict(json={"messages": _image_message("data:image/png;base64," +
                                                           base64.b64encode(b"plain text").decode())}), 400),
    "remote URL": (dict(json={"messages": _image_message("https://example.com/page.png")}), 400),
    "no messages": (dict(json={"messages": []}), 400),
    "oversized body": (dict(content=b"{" + b" " * (2 << 20) + b"}", headers={"content-type": "application/json"}),
                       413),
    "oversized chunked body": (dict(content=_too_big_chunks, headers={"content-type": "application/json"}), 413),
    "missing key": (dict(json={"messages": [{"role": "user", "content": "hi"}]}, headers={"Authorization": ""}), 401),
    "wrong key": (dict(json={"messages": [{"role": "user", "content": "hi"}]},
                       headers={"Authorization": "Bearer nope"}), 401),
    "unknown model": (dict(json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}), 404),
    "too many tokens": (dict(json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10 ** 6}), 400),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_request_is_a_json_4xx_and_the_server_keeps_serving(http, case):
    request, status = BAD_REQUESTS[case]
    if callable(request.get("content")):
        request = {**request, "content": request["content"]()}  # a generator: sent chunked, with no length
    response = http.post("/v1/chat/completions", **request)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"]
    if case == "remote URL":
        assert error["code"] == "remote_url" and "fetches nothing" in error["message"]
    assert http.get("/health").json()["status"] == "ok"


def _pdf(path: Path, pages: int) -> Path:
    images = [draw_page((300, 400), f"page {n} total {n * 7}") for n in range(1, pages + 1)]
    images[0].save(path, save_all=True, append_images=images[1:], resolution=72)
    return path


def test_document_errors_are_json_4xx(http, tmp_path):
    too_long = _pdf(tmp_path / "long.pdf", 7)
    response = http.post("/v1/ocr", files={"file": ("long.pdf", too_long.read_bytes())})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_pages"
    response = http.post("/v1/ocr", files={"file": ("notes.pdf", b"not a pdf at all")})
    assert response.status_code == 400 and "notes.pdf" in response.json()["error"]["message"]
    assert str(tmp_path) not in response.text  # the server's own paths stay on the server
    two_pages = _pdf(tmp_path / "a.pdf", 2).read_bytes()
    response = http.post("/v1/ocr", params={"pages": "9"}, files={"file": ("a.pdf", two_pages)})
    assert response.status_code == 400 and "past the end" in response.json()["error"]["message"]
    assert http.post("/v1/ocr").status_code == 400
    assert http.post("/v1/ask", files={"file": ("a.pdf", b"%PDF-")}).json()["error"]["param"] == "question"


def test_ocr_endpoint_gives_ocr_f_jsons_records_and_formats(http, tiny_idefics3, tmp_path):
    pdf = _pdf(tmp_path / "report.pdf", 2)
    response = http.post("/v1/ocr", files={"file": ("report.pdf", pdf.read_bytes())})
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in response.text.splitlines()]
    local = CliRunner().invoke(app, ["ocr", str(pdf), "--model", str(tiny_idefics3), "--offline", "--dtype",
                                     "float32", "--max-new-tokens", str(TOKENS), "-f", "json"])
    expected = [json.loads(line) for line in local.stdout.splitlines()]
    assert [r["text"] for r in records] == [r["text"] for r in expected] and len(records) == 2
    assert {r["source"] for r in records} == {"report.pdf"}
    searchable = http.post("/v1/ocr", params={"format": "pdf"}, files={"file": ("report.pdf", pdf.read_bytes())})
    assert searchable.status_code == 200 and searchable.content.startswith(b"%PDF-")
    assert 'filename="report.pdf.pdf"' in searchable.headers["content-disposition"]
    with_images = http.post("/v1/ocr", params={"include_images": "true", "pages": "2"},
                            files={"file": ("report.pdf", pdf.read_bytes())})
    [record] = [json.loads(line) for line in with_images.text.splitlines()]
    assert record["page_number"] == 2 and record["image"].startswith("data:image/jpeg;base64,")


def test_ask_endpoint_answers_with_a_citation(http, tmp_path):
    pdf = _pdf(tmp_path / "report.pdf", 2)
    response = http.post("/v1/ask", params={"question": "What is the total on page 2?", "include_images": "true"},
                         files={"file": ("report.pdf", pdf.read_bytes())})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["question"] == "What is the total on page 2?" and answer["pages_read"]
    assert {page["source"] for page in answer["pages_ranked"]} == {"report.pdf"}
    if answer["citations"]:
        assert answer["citations"][0]["image"].startswith("data:image/jpeg;base64,")


def test_metrics_count_requests_pages_and_tokens(http):
    http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert httpx.get(str(http.base_url) + "metrics").status_code == 401  # the key guards the metrics too
    text = http.get("/metrics").text
    assert 'vlmcli_requests_total{endpoint="/v1/chat/completions",status="200"}' in text
    assert "vlmcli_generated_tokens_total" in text and "vlmcli_queue_waiting" in text
    assert 'vlmcli_request_seconds_bucket{endpoint="/v1/chat/completions"' in text


def test_load_64_concurrent_requests_are_all_answered_or_refused_with_429(server):
    """A bounded burst: every request gets a 200 or a 429 (the queue holds 8), none is lost or fails otherwise."""
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    body = {"messages": [{"role": "user", "content": "Count."}], "max_tokens": 4}

    def one() -> None:
        started = time.perf_counter()
        try:
            status = httpx.post(server + "v1/chat/completions", json=body, timeout=120,
                                headers={"Authorization": f"Bearer {KEY}"}).status_code
        except httpx.HTTPError as exc:
            status = repr(exc)
        with lock:
            results.append((status, time.perf_counter() - started))

    threads = [threading.Thread(target=one) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    statuses = [status for status, _ in results]
    assert len(results) == 64 and set(statuses) <= {200, 429}, statuses
    answered = sorted(seconds for status, seconds in results if status == 200)
    assert len(answered) >= MAX_WAITING  # at least the queue's worth was served
    p50, p99 = statistics.median(answered), answered[min(len(answered) - 1, round(0.99 * (len(answered) - 1)))]
    print(f"\n64 concurrent: {len(answered)} answered, {statuses.count(429)} refused (429); "
          f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")


def _ocr_args(checkpoint: Path, inbox: Path, out: Path, *engine: str) -> list[str]:
    return ["ocr", str(inbox), "-o", str(out), "--model", str(checkpoint), "--offline", "--dtype", "float32",
            "--max-new-tokens", str(TOKENS), "-f", "markdown", *engine]


def _inbox(tmp_path: Path, images: int) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _pdf(inbox / "report.pdf", 3)
    for n in range(images):
        draw_page((200, 150), f"receipt {n} total {n * 7}.50").save(inbox / f"r{n}.png")
    return inbox


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and not p.name.startswith(".")}


def test_ocr_engine_server_gives_the_local_runs_text(server, tiny_idefics3, tmp_path):
    inbox = _inbox(tmp_path, 2)
    local = CliRunner().invoke(app, _ocr_args(tiny_idefics3, inbox, tmp_path / "local"))
    assert local.exit_code == 0, local.output
    remote = CliRunner().invoke(app, _ocr_args(tiny_idefics3, inbox, tmp_path / "remote", "--engine", "server",
                                               "--server-url", server + "v1", "--api-key", KEY, "--concurrency", "3"))
    assert remote.exit_code == 0, remote.output
    assert _files(tmp_path / "remote") == _files(tmp_path / "local")


# The client with each page held back 0.2 s, so that a kill lands mid-run (the tiny model reads a page in ms).
SLOW_CLIENT = ("import time\n"
               "from vlmcli.pipeline.engines import server\n"
               "transcribe_page = server.ServerEngine.transcribe_page\n"
               "server.ServerEngine.transcribe_page = lambda *a, **k: (time.sleep(0.2), transcribe_page(*a, **k))[1]\n"
               "from vlmcli.cli import main\n"
               "main()\n")


def test_killed_engine_client_resumes_and_loses_nothing(server, tiny_idefics3, tmp_path):
    from vlmcli.jobs.manifest import MANIFEST_NAME, done_keys

    inbox = _inbox(tmp_path, 6)
    out = tmp_path / "out"
    args = _ocr_args(tiny_idefics3, inbox, out, "--engine", "server", "--server-url", server + "v1",
                     "--concurrency", "1")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VLMCLI_API_KEY": KEY}

    def done() -> int:
        return len(done_keys(out / MANIFEST_NAME)) if (out / MANIFEST_NAME).exists() else 0

    child = subprocess.Popen([sys.executable, "-c", SLOW_CLIENT, *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while done() < 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    killed_at = done()
    assert 3 <= killed_at < 9, "the kill must land mid-run"
    resumed = subprocess.run([sys.executable, "-m", "vlmcli", *args, "--resume"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"({killed_at} from the manifest)" in resumed.stderr
    clean = CliRunner().invoke(app, _ocr_args(tiny_idefics3, inbox, tmp_path / "clean"))
    assert clean.exit_code == 0 and _files(out) == _files(tmp_path / "clean")


def test_serve_refuses_the_network_without_a_key_and_names_the_missing_extra(monkeypatch):
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--api-key" in result.stderr
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fastapi" else find_spec(name, *a))
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 6 and "pip install 'vlmcli[serve]'" in result.stderr


def test_serve_help_imports_neither_fastapi_nor_torch():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom vlmcli.cli import app\n"
            "assert CliRunner().invoke(app, ['serve', '--help']).exit_code == 0\n"
            "print(sorted(m for m in ('fastapi', 'torch', 'uvicorn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


def test_ask_engine_server_answers_images_and_documents(server, tiny_idefics3, tmp_path, loaded):
    """`ask --engine server`: a question about an image is the server's answer to it; a document's is cited."""
    from vlmcli.model.generate import generate
    from vlmcli.prompts import user_messages
    from vlmcli.specs import GenerationSpec

    image = tmp_path / "receipt.png"
    draw_page((120, 80), "Total 42").save(image)
    engine = ["--model", str(tiny_idefics3), "--engine", "server", "--server-url", server + "v1", "--api-key", KEY,
              "--max-new-tokens", str(TOKENS), "-f", "json"]
    asked = CliRunner().invoke(app, ["ask", str(image), "What is the total?", *engine])
    assert asked.exit_code == 0, asked.output
    local = generate(loaded, user_messages("What is the total?", 1), [draw_page((120, 80), "Total 42")],
                     GenerationSpec(max_new_tokens=TOKENS))
    assert json.loads(asked.stdout)["answer"] == local.text
    document = CliRunner().invoke(app, ["ask", str(_pdf(tmp_path / "report.pdf", 2)), "What is the total?", *engine])
    assert document.exit_code == 0, document.output
    record = json.loads(document.stdout)
    assert record["pages_read"] and record["question"] == "What is the total?"
