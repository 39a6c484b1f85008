"""`vlmcli serve` under load, and `ocr --engine server` next to a local run (CPU; the lead runs it for figures on
a quiet machine):

    python -m tools.models standin /tmp/standin          # the SmolVLM-256M stand-in
    python -m benchmarks.serve --checkpoint /tmp/standin --out benchmarks/serve.json

1. Requests per second and p50/p99 latency of chat completions (one dense A4 page as a data URI,
   `--new-tokens` tokens each) at 1, 4 and 16 concurrent clients, `--requests` requests per level; the
   server's queue is larger than 16, so none is refused (a 429 counts as an error here).
2. Pages per second of `vlmcli ocr` on `--pages` dense pages: local (the model in the CLI's process) and
   `--engine server` against the same server, `--concurrency 1` and 4 (one model thread serves them all, so
   on a CPU the difference is the HTTP and PNG round trip, and rendering overlapping generation). Each is a
   whole `vlmcli ocr` process: the local run's time includes loading the model, the server's was loaded before.

Check it works with tiny settings: --checkpoint <test checkpoint> --requests 4 --pages 2 --new-tokens 4.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.pages import text_page

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 4, 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--pages", type=int, default=8, help="pages for the ocr comparison")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import httpx

    from tools.serving import running_server

    with tempfile.TemporaryDirectory(prefix="vlmcli-serve-bench-") as scratch:
        work = Path(scratch)
        page = text_page(work / "dense.png")
        with running_server(args.checkpoint, work / "server", "--max-waiting", "64",
                            "--max-new-tokens", str(args.new_tokens), threads=None) as url:
            httpx.post(url + "v1/chat/completions", json=_chat(page, args.new_tokens), timeout=600)  # warm-up
            report = {"checkpoint": str(args.checkpoint), "new_tokens": args.new_tokens, "cpus": os.cpu_count(),
                      "chat": {str(level): _load(url, page, args.new_tokens, level, args.requests)
                               for level in args.levels},
                      "ocr": _ocr_rows(url, args.checkpoint, work, args.pages, args.new_tokens)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


def _chat(page: Path, new_tokens: int) -> dict:
    url = "data:image/png;base64," + base64.b64encode(page.read_bytes()).decode()
    return {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                      {"type": "text", "text": "Transcribe this page."}]}],
            "max_tokens": new_tokens, "temperature": 0}


def _load(url: str, page: Path, new_tokens: int, clients: int, requests: int) -> dict:
    """`requests` chat completions from `clients` threads at once: throughput and latency."""
    import httpx

    body, latencies, errors = _chat(page, new_tokens), [], []
    lock, next_index = threading.Lock(), iter(range(requests))

    def client() -> None:
        with httpx.Client(timeout=3600) as session:
            while True:
                with lock:
                    if next(next_index, None) is None:
                        return
                started = time.perf_counter()
                response = session.post(url + "v1/chat/completions", json=body)
                with lock:
                    (latencies if response.status_code == 200 else errors).append(
                        time.perf_counter() - started if response.status_code == 200 else response.status_code)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - started
    latencies.sort()
    return {"clients": clients, "requests": requests, "errors": errors, "wall_s": round(wall_s, 3),
            "requests_per_s": round(len(latencies) / wall_s, 4),
            "p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "p99_s": round(latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))], 3)
            if latencies else None}


def _ocr_rows(url: str, checkpoint: Path, work: Path, pages: int, new_tokens: int) -> dict:
    inbox = work / "inbox"
    inbox.mkdir()
    for n in range(pages):
        text_page(inbox / f"page{n:03d}.png", seed=n)
    common = [str(inbox), "--model", str(checkpoint), "--offline", "--max-new-tokens", str(new_tokens),
              "-f", "markdown", "--dtype", "float32"]  # as the server (tools/serving.py) and as AVX2 CPUs run
    runs = {"local": [], "server, --concurrency 1": ["--engine", "server", "--server-url", url + "v1",
                                                     "--concurrency", "1"],
            "server, --concurrency 4": ["--engine", "server", "--server-url", url + "v1", "--concurrency", "4"]}
    rows = {}
    for name, extra in runs.items():
        out = work / name.replace(" ", "").replace(",", "-")
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "vlmcli", "ocr", *common, "-o", str(out), *extra],
                                capture_output=True, text=True, cwd=ROOT)
        wall_s = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"{name}: exit {result.returncode}\n{result.stderr[-2000:]}")
        rows[name] = {"pages": pages, "wall_s": round(wall_s, 3), "pages_per_s": round(pages / wall_s, 4)}
    return rows


if __name__ == "__main__":
    main()
