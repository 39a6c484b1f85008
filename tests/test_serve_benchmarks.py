"""A smoke run of benchmarks/serve.py at tiny settings: the harness works and reports every row (the figures
come from the lead's runs on a quiet machine; benchmarks/engines.py is for a GPU machine, checked by hand at tiny
settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve benchmark needs the vlmcli[serve] extra")
pytestmark = [pytest.mark.model, pytest.mark.serve]
ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=env)


def test_serve_benchmark_smoke(tiny_idefics3, tmp_path):
    out = tmp_path / "serve.json"
    result = _run("benchmarks.serve", "--checkpoint", str(tiny_idefics3), "--requests", "4", "--pages", "2",
                  "--new-tokens", "3", "--levels", "1", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    for level in ("1", "4"):
        row = report["chat"][level]
        assert row["errors"] == [] and row["requests_per_s"] > 0 and 0 < row["p50_s"] <= row["p99_s"]
    assert set(report["ocr"]) == {"local", "server, --concurrency 1", "server, --concurrency 4"}
    assert all(row["pages_per_s"] > 0 for row in report["ocr"].values())

