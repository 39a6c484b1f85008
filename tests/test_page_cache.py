"""The page cache (SQLite, WAL): two processes at once, a damaged file, an unusable folder, LRU eviction of image
features, `vlmcli cache info|clear`; and the settings fingerprint it shares with the resume manifest."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from vlmcli.cache import keys
from vlmcli.cache.store import FILE_NAME, OCR, TEXT_LAYER, Features, PageCache
from vlmcli.cli import app
from vlmcli.jobs import ocr as ocr_job
from vlmcli.prompts import OCR_PROMPT
from vlmcli.specs import DecodeDType, GenerationSpec, KVCache, ModelSpec, Quant, RunSpec, SplitSpec

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
_WRITER = """
import sys
from pathlib import Path
from vlmcli.cache.store import OCR, PageCache
name, folder = sys.argv[1], Path(sys.argv[2])
warnings = []
with PageCache(folder, warn=warnings.append) as cache:
    for page in range(150):
        cache.put_text("file-" + name, page, OCR, f"{name} page {page} " * 20, "settings")
        cache.get_text("file-a", page // 2, OCR, "settings")
    assert all(cache.get_text("file-" + name, page, OCR, "settings") for page in range(150))
assert not warnings, warnings
"""


def test_two_processes_write_and_read_at_once(tmp_path):
    children = [subprocess.Popen([sys.executable, "-c", _WRITER, name, str(tmp_path)], cwd=ROOT,
                                 stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for child in children:
        assert child.wait(timeout=120) == 0, child.stderr.read()
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT COUNT(*) FROM page_text").fetchone() == (300,)


def test_a_damaged_file_is_rebuilt_with_a_warning(tmp_path):
    with PageCache(tmp_path) as cache:
        for page in range(200):
            cache.put_text("f", page, TEXT_LAYER, "some page text " * 50)
    path = tmp_path / FILE_NAME
    for damage in (lambda data: b"this is not a database" * 100, lambda data: data[:100] + b"\xff" * 60 + data[160:]):
        (tmp_path / f"{FILE_NAME}-wal").unlink(missing_ok=True)
        path.write_bytes(damage(path.read_bytes()))
        warnings = []
        with PageCache(tmp_path, warn=warnings.append) as cache:
            assert cache.get_text("f", 3, TEXT_LAYER) is None
            cache.put_text("f", 3, TEXT_LAYER, "again")
            assert cache.get_text("f", 3, TEXT_LAYER) == "again" and not cache.disabled
        assert len(warnings) == 1 and "was damaged" in warnings[0] and (tmp_path / f"{FILE_NAME}.damaged").exists()


def test_an_unusable_folder_turns_the_cache_off_with_one_warning(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    warnings = []
    cache = PageCache(blocker / "cache", warn=warnings.append)
    cache.put_text("f", 0, OCR, "text", "s")
    assert cache.get_text("f", 0, OCR, "s") is None and cache.disabled and len(warnings) == 1


def test_image_features_are_evicted_least_recently_used_first(tmp_path):
    with PageCache(tmp_path, features_limit_bytes=250) as cache:
        for page in range(2):
            cache.put_features("f", page, "s", Features(bytes([page]) * 100, "float32", (1, 5, 5)))
        assert cache.get_features("f", 0, "s").shape == (1, 5, 5)  # page 0 is now the most recently used
        cache.put_features("f", 2, "s", Features(b"\x02" * 100, "float32", (1, 5, 5)))
        assert [cache.get_features("f", page, "s") is not None for page in range(3)] == [True, False, True]
        assert cache.get_features("f", 0, "s").data == b"\x00" * 100


def test_the_cache_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMCLI_CACHE_DIR", str(tmp_path))
    assert "empty" in runner.invoke(app, ["cache", "info"]).stdout
    assert not (tmp_path / FILE_NAME).exists()  # looking does not create it
    with PageCache() as cache:
        cache.put_text("f", 0, TEXT_LAYER, "text")
        cache.put_text("f", 1, OCR, "text", "s")
    info = runner.invoke(app, ["cache", "info"]).stdout
    assert f"path: {tmp_path / FILE_NAME}" in info and "files: 1" in info and "by a model: 1" in info
    cleared = runner.invoke(app, ["cache", "clear"])
    assert cleared.exit_code == 0 and "removed" in cleared.stdout and not (tmp_path / FILE_NAME).exists()


# What a plain float32 load on an AVX2 CPU resolves to (model/runtime.py), written out so the values below are fixed.
CPU_FLOAT32 = {"device": "cpu", "dtype": "float32",
               "levers": ["packed_linear", "split_decode", "heap", "patch_layout", "image_features"]}


def test_fingerprints_hold_the_resolved_machine_and_keep_their_values(tmp_path):
    """The fingerprint names the resolved device, dtype and levers, never `auto`; otherwise its values stay as
    they are (a change re-reads every done page of every user's folders, so it must be deliberate)."""
    plain = ocr_job.OcrRequest(inputs=(), instruction=OCR_PROMPT, run=RunSpec())
    chosen = ocr_job.OcrRequest(inputs=(), instruction="Read.", run=RunSpec(
        model=ModelSpec(model_id="x/y", revision="abc", quantize=Quant.nf4),
        split=SplitSpec(split=False, longest_edge_px=1024),
        generation=GenerationSpec(kv_cache=KVCache.static, max_new_tokens=99), batch_size=4))
    settings = ocr_job.run_settings(plain, CPU_FLOAT32)
    assert {name: settings[name] for name in CPU_FLOAT32} == CPU_FLOAT32
    assert keys.settings_fingerprint(settings) == "c83396539e86c4cd7e692ead7d13a017"
    assert keys.settings_fingerprint(ocr_job.run_settings(chosen, CPU_FLOAT32)) == "43aacfeccdce96ed591afa228d229074"
    (tmp_path / "config.json").write_text('{"model_type": "idefics3"}')  # a checkpoint the levers know
    local = ocr_job.OcrRequest(inputs=(), instruction=OCR_PROMPT, run=RunSpec(model=ModelSpec(model_id=str(tmp_path))))
    here = ocr_job.run_settings(local)  # as this machine resolves it
    assert here["dtype"] in ("float32", "bfloat16") and here["device"] == "cpu" and "image_features" in here["levers"]
    for other in ({**CPU_FLOAT32, "dtype": "bfloat16"}, {**CPU_FLOAT32, "device": "cuda"},
                  {**CPU_FLOAT32, "levers": CPU_FLOAT32["levers"][1:]}):
        assert keys.settings_fingerprint(ocr_job.run_settings(plain, other)) != keys.settings_fingerprint(settings)
    poppler = keys.settings_fingerprint(keys.run_settings(RunSpec(), OCR_PROMPT, CPU_FLOAT32, "poppler"))
    assert poppler == "c83396539e86c4cd7e692ead7d13a017"
    assert keys.settings_fingerprint(keys.run_settings(RunSpec(), OCR_PROMPT, CPU_FLOAT32, "pdfium")) != poppler
    half = RunSpec(model=ModelSpec(decode_dtype=DecodeDType.float16))  # another rounding: another page text
    assert keys.settings_fingerprint(keys.run_settings(half, OCR_PROMPT, CPU_FLOAT32, "poppler")) != poppler
    vision = {**CPU_FLOAT32, "levers": ["packed_linear", "patch_layout", "image_features"]}  # IMAGE_PARTS' levers
    assert keys.image_settings(half, "poppler", vision) == keys.image_settings(RunSpec(), "poppler", vision)


def test_a_settings_change_is_said_in_words():
    before = ocr_job.run_settings(ocr_job.OcrRequest(inputs=(), instruction="Read.", run=RunSpec()),
                                  {**CPU_FLOAT32, "dtype": "bfloat16"})
    after = ocr_job.run_settings(ocr_job.OcrRequest(inputs=(), instruction="Read.", run=RunSpec(
        generation=GenerationSpec(max_new_tokens=99))), {**CPU_FLOAT32, "levers": ["heap"]})
    assert keys.settings_diff(before, before) == ""
    assert keys.settings_diff(before, after) == ("dtype bfloat16 -> float32; generation.max_new_tokens 1024 -> 99; "
                                                 "levers packed_linear,split_decode,heap,patch_layout,image_features "
                                                 "-> heap")
    assert keys.settings_diff(None, after) == "settings not recorded: an earlier vlmcli wrote them"


