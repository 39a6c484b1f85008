"""Smoke runs of benchmarks/serve.py and benchmarks/engines.py at tiny settings: the harnesses work and report
every row (the figures come from the lead's runs on a quiet machine)."""

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


def test_engines_benchmark_smoke(tiny_idefics3, tmp_path):
    out = tmp_path / "engines.json"
    result = _run("benchmarks.engines", "--checkpoint", str(tiny_idefics3), "--pages", "1", "--new-tokens", "3",
                  "--device", "cpu", "--batch-size", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["rows"]["transformers, --batch-size 2"]["wall_s"]) == {"1", "2"}
