"""Fixtures made at test time: pages, PDFs, and tiny real checkpoints (no downloads)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Workers run side by side, one per core (scripts/test.sh): torch in each, and in the processes tests start,
    # takes one thread, since a second would only wait for a core another worker holds. Set before torch loads.
    os.environ["OMP_NUM_THREADS"] = "1"


def draw_page(size=(400, 300), text="Hello 42", color="white") -> Image.Image:
    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).text((20, 20), text, fill="black")
    return image


@pytest.fixture
def page_png(tmp_path) -> Path:
    path = tmp_path / "page.png"
    draw_page().save(path)
    return path


@pytest.fixture
def pdf_3_pages(tmp_path) -> Path:
    path = tmp_path / "doc.pdf"
    pages = [draw_page((300, 400), f"page {n}") for n in (1, 2, 3)]
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=72)
    return path


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path_factory):
    """Tests never reach a hub: a private HF cache and offline mode for every test."""
    home = tmp_path_factory.getbasetemp() / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, when it is first imported (perhaps before this fixture ran).
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.delenv("VLMCLI_MODEL", raising=False)


@pytest.fixture(autouse=True)
def _private_page_cache(monkeypatch, tmp_path_factory):
    """Each test has its own page cache folder, never the user's."""
    monkeypatch.setenv("VLMCLI_CACHE_DIR", str(tmp_path_factory.mktemp("vlmcli-cache")))


@pytest.fixture(scope="session")
def tiny_idefics3(tmp_path_factory) -> Path:
    from tools.models.build import build_test_checkpoint

    return build_test_checkpoint(tmp_path_factory.mktemp("tiny-idefics3"), "idefics3")


@pytest.fixture(scope="session")
def tiny_idefics2(tmp_path_factory) -> Path:
    from tools.models.build import build_test_checkpoint

    return build_test_checkpoint(tmp_path_factory.mktemp("tiny-idefics2"), "idefics2")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """Factory of tiny OCR-family checkpoints (tools/models/families.py), each built once per session:
    `tiny_checkpoint("lighton_ocr")` -> the folder. Families: tools.models.families.FAMILIES."""
    from tools.models.families import build_family_checkpoint

    built: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in built:
            built[family] = build_family_checkpoint(tmp_path_factory.mktemp(f"tiny-{family}"), family)
        return built[family]

    return make


@pytest.fixture
def finished_stage_two(tmp_path) -> Path:
    """A finished stage-2 fine-tuning run's folder (its adapter and run.json) for `finetune --from`."""
    earlier = tmp_path / "s2"
    earlier.mkdir()
    (earlier / "adapter_config.json").write_text("{}")
    (earlier / "run.json").write_text(json.dumps({
        "status": "finished", "stage": {"number": 2}, "model": {"model_id": "some/model", "quantize": "none"},
        "data": [{"path": "/d/pages.jsonl", "share": 1.0, "split": True, "longest_edge_px": 512}]}))
    return earlier


@pytest.fixture
def unpacked_linear(monkeypatch) -> None:
    """Loads skip the levers that round differently from transformers (packed_linear, sigmoid_gelu), so nn.Linear
    and the tanh GELU stay: transformers' exact arithmetic."""
    monkeypatch.setenv("VLMCLI_SKIP_LEVERS", "packed_linear,sigmoid_gelu")


def load_run(run):
    """The model a run loads (what the pipeline does before its first page)."""
    from vlmcli import model

    return model.load(run.model, run.split)


def always_load(monkeypatch, loaded) -> None:
    """Every load in the pipeline returns `loaded`: a model loaded once serves several runs."""
    from vlmcli import model

    monkeypatch.setattr(model, "load", lambda spec, split, **kwargs: loaded)
