"""The vision tower's linear layers prepacked for oneDNN on x86 CPUs in float32 (vlmcli/model/levers/packed_linear.py)."""

from __future__ import annotations

import pytest
import torch

from vlmcli import model as model_module
from vlmcli.model import loading
from vlmcli.model.levers import packed_linear
from vlmcli.model.levers.packed_linear import PackedLinear
from vlmcli.pipeline.ask import ask
from vlmcli.specs import DType, GenerationSpec, ModelSpec, RunSpec, SplitSpec

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512_BF16 = AVX2 | {"avx512f", "avx512_bf16"}
needs_onednn = pytest.mark.skipif(not packed_linear.pays("cpu", torch.float32, AVX2),
                                  reason="this torch has no oneDNN linear kernels (not an x86 build)")


def test_the_choice_follows_device_dtype_and_cpu_flags():
    if not packed_linear.pays("cpu", torch.float32, AVX2):
        pytest.skip("this torch has no oneDNN linear kernels")
    assert not packed_linear.pays("cpu", torch.float32, frozenset({"sse4_2"}))  # no AVX2: nothing to gain
    assert not packed_linear.pays("cpu", torch.bfloat16, AVX512_BF16)  # bf16 keeps transformers' path
    assert not packed_linear.pays("cuda", torch.float32, AVX2)


@pytest.mark.parametrize(("flags", "packed"), [(AVX2, True), (AVX512_BF16, False)])
def test_auto_packs_on_avx2_and_not_where_it_picks_bf16(tiny_idefics3, monkeypatch, flags, packed):
    if packed and not packed_linear.pays("cpu", torch.float32, AVX2):
        pytest.skip("this torch has no oneDNN linear kernels")
    monkeypatch.setattr(loading, "cpu_flags", lambda: flags)
    loaded = model_module.load(ModelSpec(model_id=str(tiny_idefics3), offline=True), SplitSpec())
    assert loaded.dtype == (torch.float32 if packed else torch.bfloat16)
    vision = loaded.model.model.vision_model
    assert any(isinstance(m, PackedLinear) for m in vision.modules()) == packed
    assert not any(isinstance(m, PackedLinear) for m in loaded.model.model.text_model.modules())


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 48), (2, 33, 48)])
def test_a_packed_layer_computes_what_nn_linear_does(bias, shape):
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 80, bias=bias)
    x = torch.randn(*shape)
    expected = linear(x).detach()
    with torch.inference_mode():
        got = PackedLinear(linear)(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_a_packed_model_saves_the_weights_it_was_loaded_with(tiny_idefics3, monkeypatch):
    """`vlmcli export` saves a model loaded for inference: its state dict must be the checkpoint's."""
    monkeypatch.setattr(loading, "cpu_flags", lambda: AVX2)
    packed = model_module.load(ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True), SplitSpec())
    monkeypatch.setattr(loading, "cpu_flags", lambda: frozenset())
    plain = model_module.load(ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True), SplitSpec())
    assert any(isinstance(m, PackedLinear) for m in packed.model.modules())
    saved, expected = packed.model.state_dict(), plain.model.state_dict()
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[key], expected[key]) for key in expected)


@needs_onednn
def test_a_page_reads_the_same_tokens_packed_or_not(tiny_idefics3, page_png, monkeypatch):
    run = RunSpec(model=ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True),
                  split=SplitSpec(split=True), generation=GenerationSpec(max_new_tokens=12))
    monkeypatch.setattr(loading, "cpu_flags", lambda: AVX2)
    packed = ask([page_png], "What is written?", run)
    monkeypatch.setattr(loading, "cpu_flags", lambda: frozenset())
    plain = ask([page_png], "What is written?", run)
    assert packed.token_ids == plain.token_ids and packed.image_tokens == plain.image_tokens > 0


@needs_onednn
def test_only_plain_float32_linear_layers_are_replaced():
    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision_model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4).bfloat16(),
                                                    torch.nn.LayerNorm(4))
            self.connector = torch.nn.Sequential(torch.nn.Linear(4, 2))
            self.text_model = torch.nn.Linear(4, 4)

    tower = Tower()
    assert packed_linear.pack_vision_linears(tower) == 2
    assert isinstance(tower.vision_model[0], PackedLinear) and type(tower.vision_model[1]) is torch.nn.Linear
    assert isinstance(tower.connector[0], PackedLinear) and type(tower.text_model) is torch.nn.Linear
