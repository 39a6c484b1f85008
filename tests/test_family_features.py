"""Every first-class family (issue 29: "every feature works with every first-class family") on its tiny checkpoint
(tools/models/families.py), through the CLI: `ocr --shard 1/2` and `--shard 2/2` into one folder (with -v naming
the family), `eval`, and `export` of a one-step fine-tune. The families' own tests prove the tokens; these prove the
batch commands run for each, cheaply: two tokens a page, one training step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import draw_page
from typer.testing import CliRunner

from vlmcli.cli import app
from vlmcli.jobs.shards import shard_of

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]

# family -> its tiny checkpoint (olmOCR-2 and Nanonets-OCR2 are Qwen2.5-VL checkpoints chosen by --family)
CHECKPOINT = {"lighton_ocr": "lighton_ocr", "paddleocr_vl": "paddleocr_vl", "glm_ocr": "glm_ocr",
              "olmocr2": "qwen2_5_vl", "nanonets_ocr2": "qwen2_5_vl", "deepseek_ocr2": "deepseek_ocr2",
              "granite_docling": "granite_docling", "qwen3_vl": "qwen3_vl"}
COMMON = ["--offline", "--dtype", "float32"]


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _model(family: str, tiny_checkpoint) -> list:
    checkpoint = CHECKPOINT[family]
    return ["--model", tiny_checkpoint(checkpoint), *(["--family", family] if family != checkpoint else [])]


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    """Two small pages, one in each shard of two."""
    folder = tmp_path_factory.mktemp("inbox")
    names = [f"page{index}.png" for index in range(20)]
    for shard in (1, 2):
        name = next(name for name in names if shard_of(name, 2) == shard)
        draw_page((96, 72), f"Total {shard}").save(folder / name)
    return folder


@pytest.fixture(scope="module")
def data(inbox, tmp_path_factory) -> Path:
    """A transcription and a question about the inbox's pages."""
    first, second = sorted(inbox.iterdir())
    path = tmp_path_factory.mktemp("data") / "data.jsonl"
    rows = [{"image": str(first), "text": "Total 1"}, {"image": str(second), "question": "Total?", "answer": "2"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("family", CHECKPOINT)
def test_shards_eval_and_export_run_for_every_family(family, tiny_checkpoint, inbox, data, tmp_path):
    model = _model(family, tiny_checkpoint)
    out = tmp_path / "out"
    for shard in ("1/2", "2/2"):
        result = _cli("ocr", inbox, "-o", out, "--shard", shard, "-f", "json", "--max-new-tokens", 2, "--no-cache",
                      *model, *COMMON, *(["-v"] if shard == "1/2" else []))
        assert result.exit_code == 0, result.output
        assert "1 pages ok" in result.stderr
        if shard == "1/2":
            assert f"family: {family};" in result.stderr  # -v names the family the run uses
    assert sorted(path.name for path in out.glob("page*.jsonl")) == sorted(f"{page.name}.jsonl" for page in inbox.iterdir())
    assert len(list(out.glob(".vlmcli-manifest.*-of-2.jsonl"))) == 2

    evaluated = _cli("eval", "--data", data, "--max-new-tokens", 2, *model, *COMMON)
    assert evaluated.exit_code == 0, evaluated.output
    assert [row.get("error") for row in json.loads(evaluated.stdout)["examples"]] == [None, None]

    trained = _cli("finetune", "--stage", "3", "--data", data, "-o", tmp_path / "run", "--max-steps", 1,
                   "--save-steps", 1, "--lora-rank", 2, "--batch-size", 1, "--grad-accum", 1, *model, "--offline")
    assert trained.exit_code == 0, trained.output
    exported = _cli("export", "--adapter", tmp_path / "run", "-o", tmp_path / "merged", *COMMON)
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["smoke_test_image_tokens"] > 0


def test_a_checkpoint_without_a_profile_reads_through_the_generic_one_and_v_says_so(tiny_checkpoint, inbox):
    """`--family generic` stands for any image-text-to-text checkpoint no profile knows: its own chat template,
    text out; -v names it."""
    result = _cli("ocr", min(inbox.iterdir()), "-v", "--max-new-tokens", 2, "--no-cache", "--model",
                  tiny_checkpoint("lighton_ocr"), "--family", "generic", *COMMON)
    assert result.exit_code == 0, result.output
    assert "family: generic;" in result.stderr, result.stderr
