"""The vision tower's tanh GELU computed as x * sigmoid(2u) (vlmcli/model/levers/sigmoid_gelu.py)."""

from __future__ import annotations

import pytest
import torch
from transformers.activations import GELUTanh

from vlmcli import model as model_module
from vlmcli.model import runtime
from vlmcli.model.levers import registry, sigmoid_gelu
from vlmcli.model.levers.sigmoid_gelu import SigmoidGELUTanh
from vlmcli.pipeline.ask import ask
from vlmcli.specs import DType, GenerationSpec, ModelSpec, RunSpec, SplitSpec

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})


def _reference(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.gelu(x.double(), approximate="tanh")


def test_it_equals_the_tanh_form_to_float32_rounding():
    x = torch.cat([torch.linspace(-12, 12, 200_001), torch.randn(100_000) * 3, torch.tensor([0.0, -0.0, 1e-30])])
    ours, torchs = SigmoidGELUTanh()(x), GELUTanh()(x)
    ours_error = (ours.double() - _reference(x)).abs().max().item()
    torch_error = (torchs.double() - _reference(x)).abs().max().item()
    assert ours_error <= 2 * torch_error + 1e-7
    assert torch.allclose(ours, torchs, rtol=4e-6, atol=4e-7)
    assert ours.dtype == torch.float32 and ours.shape == x.shape


def test_its_tails_are_those_of_gelu():
    x = torch.tensor([-1e30, -1e4, -100.0, 100.0, 1e4, 1e30, float("inf")])
    got = SigmoidGELUTanh()(x)
    assert torch.equal(got.abs()[:3], torch.zeros(3))  # far left: zero, not a NaN from an overflowed cube
    assert torch.equal(got[3:], x[3:])
    assert torch.isnan(SigmoidGELUTanh()(torch.tensor([float("nan")]))).all()


def test_it_leaves_its_input_as_it_was():
    x = torch.randn(64, 32)
    before = x.clone()
    SigmoidGELUTanh()(x)
    assert torch.equal(x, before)


def test_only_the_vision_towers_tanh_gelus_are_replaced(tiny_idefics3, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: AVX2)
    loaded = model_module.load(ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True), SplitSpec())
    inner = loaded.model.model
    assert loaded.uses("sigmoid_gelu")
    assert any(isinstance(m, SigmoidGELUTanh) for m in inner.vision_model.modules())
    assert not any(type(m) is GELUTanh for m in inner.vision_model.modules())
    assert not any(isinstance(m, SigmoidGELUTanh) for m in inner.text_model.modules())
    assert sigmoid_gelu.use_for_inference(torch.nn.Linear(2, 2), ("vision_model",)) == 0


@pytest.mark.parametrize("target", [registry.Target("cpu", "bfloat16", "idefics3", cpu_flags=AVX2),
                                    registry.Target("cuda", "float32", "idefics3", cpu_flags=AVX2),
                                    registry.Target("cpu", "float32", "idefics3", cpu_flags=frozenset({"neon"}))])
def test_it_is_not_chosen_where_it_was_not_measured(target):
    assert "sigmoid_gelu" not in [lever.name for lever in registry.select(target)]


def test_a_page_reads_the_same_tokens_with_it_or_without(tiny_idefics3, page_png, monkeypatch):
    run = RunSpec(model=ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True),
                  split=SplitSpec(split=True), generation=GenerationSpec(max_new_tokens=12))
    monkeypatch.setattr(runtime, "cpu_flags", lambda: AVX2)
    with_lever = ask([page_png], "What is written?", run)
    monkeypatch.setenv(registry.SKIP_ENV, "sigmoid_gelu")
    without = ask([page_png], "What is written?", run)
    assert with_lever.token_ids == without.token_ids and with_lever.image_tokens == without.image_tokens > 0
