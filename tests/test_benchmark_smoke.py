"""A smoke run of the speed benchmark on the tiny checkpoint: the harness works and reports every column."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[1]


def _speed(tiny_idefics3, tmp_path, *arguments: str) -> dict:
    out = tmp_path / "speed.json"
    command = [sys.executable, "-m", "benchmarks.speed", "--checkpoint", str(tiny_idefics3), "--new-tokens", "3",
               "--out", str(out), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(out.read_text())


def test_speed_benchmark_rounds_floor_whole_processes_and_levers(tiny_idefics3, tmp_path):
    report = _speed(tiny_idefics3, tmp_path, "--set", "float32", "--rounds", "2", "--only", "floor",
                    "--only", "vlmcli ocr, dense A4", "--only", "card snippet, sdpa", "--only", "whole process",
                    "--only", "vlmcli ocr, without split_decode", "--only", "OpenVINO fp32")
    page = report["rows"]["vlmcli ocr, dense A4"]
    assert page["new_tokens"] == 3 and page["image_tokens"] > 0 and page["peak_rss_gb"] > 0
    assert 0 < page["first_token_s"] <= page["page_s"] and page["decode_tok_s"] > 0
    assert page["page_s_range"][0] <= page["page_s"] <= page["page_s_range"][1]
    assert report["rounds"] == 2 and len(report["per_round"]) == 2 and report["machine"]["cores"] >= 1
    floor = next(row for name, row in report["rows"].items() if name.startswith("floor"))
    assert floor["gflop_s"] > 0 and set(floor["shape_gflop_s"]) >= {"vision fc1", "text gate/up"}
    summary = report["summary"]
    for key in ("page_vs_floor", "speedup_vs_card", "speedup_vs_openvino_vision", "load_minus_card_s",
                "whole_process_speedup_vs_card", "lever split_decode: page speedup"):
        assert summary[key]["rounds"] == 2 and summary[key]["min"] <= summary[key]["median"] <= summary[key]["max"]
    assert report["rows"]["vlmcli --help"]["wall_s"] > 0
    assert report["rows"]["vlmcli ocr, whole process"]["wall_s"] > 0


def test_speed_benchmark_lossy_rows_say_how_far_they_agree(tiny_idefics3, tmp_path):
    report = _speed(tiny_idefics3, tmp_path, "--set", "extra", "--rounds", "1", "--only", "vlmcli ocr, dense A4",
                    "--only", "--decode-dtype float16", "--only", "OpenVINO int8", "--only", "llama.cpp")
    for name in ("vlmcli ocr, dense A4, --decode-dtype float16", "OpenVINO int8-weight vision + vlmcli LM"):
        assert report["rows"][name]["new_tokens"] == 3, report["rows"][name]
        assert 0 <= report["summary"][f"leading equal tokens: {name}"]["median"] <= 3
    for text_type in ("f32", "q8_0"):  # built by benchmarks/llamacpp.sh, which the test suite does not run
        llamacpp = report["rows"][f"llama.cpp, {text_type} text + f32 mmproj"]
        assert "page_s" in llamacpp or "benchmarks/llamacpp.sh" in llamacpp["skipped"], llamacpp


def test_rounds_report_medians_and_spread():
    from benchmarks.speed_report import _row

    row = _row([{"page_s": 3.0, "decode_tok_s": 9.0, "dtype": "float32"},
                {"page_s": 5.0, "decode_tok_s": 7.0, "dtype": "float32"}, {"page_s": 4.5, "dtype": "float32"}])
    assert row["page_s"] == 4.5 and row["page_s_range"] == [3.0, 5.0] and row["decode_tok_s"] == 8.0
    assert _row([{"page_s": 1.0}, {"error": "x"}])["page_s"] == 1.0
    assert _row([{"error": "x"}]) == {"error": "x"}


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


@pytest.mark.model
def test_docqa_benchmark_asks_each_question_in_its_own_process(tiny_idefics3, tmp_path):
    """The model half of benchmarks/docqa.py at tiny settings: a first question with an empty page cache, then
    another question in a second process that finds that cache, at the default --top-k, the load apart."""
    from vlmcli.specs import DEFAULT_TOP_K

    out = tmp_path / "docqa.json"
    command = [sys.executable, "-m", "benchmarks.docqa", "--skip-retrieval", "--checkpoint", str(tiny_idefics3),
               "--answer-tokens", "2", "--ocr-tokens", "2", "--scanned-pages", "1", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    questions = json.loads(out.read_text())["questions"]
    assert questions["top_k"] == DEFAULT_TOP_K
    rows = questions["rows"]
    for name in ("text layer", "scanned"):
        first = rows[f"{name}, first question, empty page cache"]
        second = rows[f"{name}, another question, second process, page cache kept"]
        for row in (first, second):
            assert row["load_s"] > 0 and row["question_s"] > 0 and row["startup_s"] > 0
            assert row["process_s"] == pytest.approx(row["startup_s"] + row["load_s"] + row["question_s"])
            assert row["new_tokens"] == 2 * len(row["pages_read"])
        assert not any(first["features_cached"]) and second["features_cached"]
        # The second process reads from the cache the pages the first one read, and encodes the others.
        assert second["features_cached"] == [page in first["pages_read"] for page in second["pages_read"]]
    text_first = rows["text layer, first question, empty page cache"]
    text_second = rows["text layer, another question, second process, page cache kept"]
    assert text_first["pages_read"] != text_second["pages_read"]  # another question: other pages come first
    assert 1 <= len(text_second["pages_read"]) <= DEFAULT_TOP_K
    assert rows["scanned, first question, empty page cache"]["text_sources"] == ["ocr"]
    assert rows["scanned, another question, second process, page cache kept"]["text_sources"] == ["cached_ocr"]


def test_agreement_benchmark_smoke(tiny_idefics3, tmp_path):
    """Each lossy option's tokens against float32's, page by page and prompt by prompt, with decode rates."""
    out = tmp_path / "agreement.json"
    command = [sys.executable, "-m", "benchmarks.agreement", "--checkpoint", str(tiny_idefics3), "--new-tokens", "3",
               "--pages", "sparse", "--questions", "1", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [(c["page"], c["prompt"]) for c in report["cases"]] == [
        ("sparse", "ocr"), ("sparse", "What is the total amount due?"), ("small", "What is the capital of France?")]
    assert all(0 <= n <= 3 for n in report["summary"]["leading_equal: decode-float16"])
    assert report["summary"]["leading_equal: split-decode"] == [3, 3, 3]  # lossless up to the summation order
    assert report["summary"]["decode_speedup: decode-float16"] > 0


def test_decode_products_benchmark_smoke():
    command = [sys.executable, "-m", "benchmarks.decode_products", "--layers", "1", "--rounds", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rows=1 threads=1 SplitDecodeLinear" in result.stdout and "split speedup" in result.stdout

def test_llamacpp_times_come_from_its_log():
    """Load is left out: the page is llama.cpp's prompt eval (slices encoded, image and text prefill) + decode."""
    from benchmarks.llamacpp_contender import parse_log

    log = "\n".join([
        "0.00.026.662 I llama_model_loader: loaded meta data with 28 key-value pairs and 273 tensors",
        "0.01.323.570 I encoding mtmd batch, n_chunks = 1 (done = 1, total = 5)",
        "0.08.511.417 I mtmd batch encoding done in 2000 ms",
        "0.08.511.436 I decoding image batch 1/1, n_tokens_batch = 64", "0.09.505.046 I image decoded (batch 1/1) in 150 ms",
        "0.10.323.570 I encoding mtmd batch, n_chunks = 1 (done = 3, total = 5)",
        "0.11.511.417 I mtmd batch encoding done in 1000 ms",
        "0.11.511.436 I decoding image batch 1/1, n_tokens_batch = 64", "0.11.605.046 I image decoded (batch 1/1) in 150 ms",
        "0.13.909.565 I llama_perf_context_print:        load time =   13000.00 ms",
        "0.13.909.570 I llama_perf_context_print: prompt eval time =    3500.00 ms /   140 tokens (   25.00 ms per token)",
        "0.13.909.573 I llama_perf_context_print:        eval time =    1000.00 ms /    31 runs   (   32.26 ms per token)"])
    parsed = parse_log(log)
    assert parsed["page_s"] == pytest.approx(4.5) and parsed["first_token_s"] == pytest.approx(3.5)
    assert parsed["vision_s"] == pytest.approx(3.0) and parsed["decode_tok_s"] == pytest.approx(31.0)
    assert (parsed["slices"], parsed["image_tokens"], parsed["prompt_tokens"], parsed["new_tokens"]) == (2, 128, 140, 32)
    with pytest.raises(ValueError, match="lacks its timings"):
        parse_log("0.00.026.662 I llama_model_loader: loaded meta data")


def test_families_benchmark_compares_each_side_within_a_round(tiny_checkpoint, tmp_path):
    """benchmarks/families.py on a tiny LightOnOCR checkpoint put where the stand-in would be built."""
    import shutil

    standins = tmp_path / "standins"
    shutil.copytree(tiny_checkpoint("lighton_ocr"), standins / "lighton_ocr")
    out = tmp_path / "families.json"
    command = [sys.executable, "-m", "benchmarks.families", "--standins", str(standins), "--only", "lighton_ocr",
               "--rounds", "1", "--new-tokens", "3", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    family = json.loads(out.read_text())["families"]["lighton_ocr"]
    assert family["vlmcli"]["family"] == "lighton_ocr" and family["plain"]["new_tokens"] == 3
    assert family["plain"]["image_tokens"] > 0 and family["plain"]["linear_gflop"] > 0
    assert family["vlmcli"]["image_tokens"] == family["plain"]["image_tokens"]  # the same page, the same work
    for key in ("wall_s", "page_s", "peak_rss_gb"):
        assert family["vlmcli_over_plain"][key]["median"] > 0 and family["vlmcli"][key]["median"] > 0
    assert set(family["floor_share"]) == {"vlmcli", "plain"} and family["floor_gflop_s"]["median"] > 0


def test_each_round_runs_every_contender_once_in_a_moving_order():
    from benchmarks.speed import _rotated

    names = [f"contender {index}" for index in range(12)]
    orders = [_rotated(names, round_index) for round_index in range(5)]
    assert all(sorted(order) == sorted(names) for order in orders)
    assert len({order[0] for order in orders}) == 5  # a different contender starts each round
    followers = {tuple(order[order.index("contender 1") + 1:order.index("contender 1") + 2]) for order in orders}
    assert len(followers) > 1  # contender 1 is not always followed by the same one
    assert _rotated([], 3) == []
