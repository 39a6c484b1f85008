"""A real `vlmcli serve` for the tests and benchmarks: a subprocess on loopback (port 0, the port read from its
stderr), stopped with SIGTERM. The tests start one per module (module-scoped fixtures), since each loads a model."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

READY = re.compile(r"serving .* at (http://127\.0\.0\.1:\d+/)")


@contextmanager
def running_server(checkpoint: Path, work: Path, *args: str, threads: int | None = 1):
    """Yields the server's base URL (ending in /) while it runs. `threads`: torch's threads in the server (one
    for tests, which share the cores; None: torch's default, one per core, for a benchmark)."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(work / "hf"), "VLMCLI_CACHE_DIR": str(work / "cache"),
           **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    env.pop("VLMCLI_API_KEY", None)
    log = open(work / "server.log", "w+")
    child = subprocess.Popen([sys.executable, "-m", "vlmcli", "serve", "--model", str(checkpoint), "--offline",
                              "--dtype", "float32", "--port", "0", "--work-dir", str(work / "serve"), *args],
                             stdout=subprocess.DEVNULL, stderr=log, env=env, text=True)
    try:
        yield _wait_ready(child, log)
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
        log.close()


def _wait_ready(child: subprocess.Popen, log) -> str:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if child.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"vlmcli serve exited with {child.returncode}:\n{log.read()}")
        log.seek(0)
        found = READY.search(log.read())
        if found:
            try:
                if httpx.get(found[1] + "health", timeout=5).status_code == 200:
                    return found[1]
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise RuntimeError("vlmcli serve did not start within 120 s")
