"""A smoke run of the speed benchmark on the tiny checkpoint: the harness works and reports every column."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[1]


def test_speed_benchmark_smoke(tiny_idefics3, tmp_path):
    out = tmp_path / "speed.json"
    command = [sys.executable, "-m", "benchmarks.speed", "--checkpoint", str(tiny_idefics3), "--new-tokens", "3", "--out", str(out),
               "--only", "vlmcli ocr, dense A4", "--only", "card snippet as written", "--only", "matmul float32",
               "--only", "vlmcli float32, vision linear unpacked", "--only", "OpenVINO fp32 vision + vlmcli LM"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    page = report["rows"]["vlmcli ocr, dense A4"]
    assert page["new_tokens"] == 3 and page["image_tokens"] > 0 and page["peak_rss_gb"] > 0
    assert 0 < page["first_token_s"] <= page["page_s"] and page["decode_tok_s"] > 0
    assert report["rows"]["card snippet as written (bf16, eager)"]["new_tokens"] == 3
    assert {"floor_s_float32", "vlmcli_vs_floor_float32", "speedup_vs_card"} <= set(report["summary"])
    assert report["rows"]["vlmcli --help (median of 5)"]["wall_s"] > 0
    assert "vlmcli ocr, dense A4, --dtype float32" not in report["rows"]  # a full name picks that row alone
    assert report["rows"]["vlmcli float32, vision linear unpacked"]["linear"] == "nn.Linear"
    openvino = report["rows"]["OpenVINO fp32 vision + vlmcli LM"]
    assert openvino.get("new_tokens") == 3 or "pip install" in openvino.get("skipped", ""), openvino


def test_rounds_report_medians_and_every_page_time():
    from benchmarks.speed import _median_row

    row = _median_row([{"page_s": 3.0, "decode_tok_s": 9.0, "dtype": "float32"},
                       {"page_s": 5.0, "decode_tok_s": 7.0, "dtype": "float32"}])
    assert row == {"page_s": 4.0, "decode_tok_s": 8.0, "dtype": "float32", "page_s_rounds": [3.0, 5.0]}
    assert _median_row([{"page_s": 1.0}, {"error": "x"}]) == {"error": "x"}


def test_docqa_benchmark_smoke(tmp_path):
    """The retrieval half of benchmarks/docqa.py on one short document (the model half is the code of `ask`)."""
    out = tmp_path / "docqa.json"
    command = [sys.executable, "-m", "benchmarks.docqa", "--documents", "1", "--max-pages", "10", "--skip-model",
               "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    retrieval = json.loads(out.read_text())["retrieval"]
    assert retrieval["answerable_questions"] == 2 and retrieval["unanswerable_questions"] == 1
    assert 0 <= retrieval["hit_at_1"] <= retrieval["hit_at_3"] <= 1 and retrieval["extract_ms_per_page"] > 0
