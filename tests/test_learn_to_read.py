"""The 2-minute version of examples/learn_to_read.sh: a random-weight model learns to read through `vlmcli finetune`.

A pipeline that is wrong anywhere (pixels, prompts, label masking, saving,
loading, generation, scoring) does not learn; through this one, the model reads
held-out renderings of single characters after stage 1 that it could not read before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.synthetic.fonts import FONT_DIRS, find_fonts

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.model


def _overall(run: Path, model: str) -> dict:
    return json.loads((run / "eval" / f"{model}__glyphs_heldout.json").read_text().splitlines()[-1])["overall"]


@pytest.mark.skipif(not any(f.style == "printed" for f in find_fonts(FONT_DIRS)),
                    reason="no printed fonts: apt-get install fonts-dejavu-core (scripts/setup.sh does)")
def test_quick_learn_to_read_reads_held_out_characters(tmp_path):
    env = {**os.environ, "QUICK": "1", "SKIP_SETUP": "1", "RUN": str(tmp_path), "PYTHON": sys.executable}
    subprocess.run(["bash", str(ROOT / "examples" / "learn_to_read.sh")], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, timeout=900)
    before, after = _overall(tmp_path, "untrained"), _overall(tmp_path, "stage1")
    assert before["examples"] == after["examples"] == 60 and after["errors"] == 0
    assert before["exact_match"] < 0.1 and before["cer"] > 0.9  # chance is 1/36
    assert after["exact_match"] > 0.8 and after["cer"] < 0.2, (before, after)
