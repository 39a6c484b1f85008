"""The vision tower's linear layers prepacked for oneDNN on x86 CPUs in float32 (vlmcli/model/levers/packed_linear.py).

The registry chooses this lever on every x86 CPU with AVX2, so on x86 nothing here skips: a torch without
oneDNN's private linear ops fails these tests. Elsewhere the lever is never chosen and the file is skipped."""

from __future__ import annotations

import platform

import pytest
import torch

from vlmcli import model as model_module
from vlmcli.errors import DependencyError
from vlmcli.model import runtime
from vlmcli.model.levers import packed_linear, registry
from vlmcli.model.levers.packed_linear import PackedLinear
from vlmcli.model.levers.registry import Target
from vlmcli.pipeline.ask import ask
from vlmcli.specs import DType, GenerationSpec, ModelSpec, RunSpec, SplitSpec

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512_BF16 = AVX2 | {"avx512f", "avx512_bf16"}
pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="an x86 lever: the registry never chooses it on this machine")


def test_this_x86_torch_has_the_private_ops_the_lever_calls():
    assert torch.backends.mkldnn.is_available()
    assert hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    assert packed_linear.available()


def test_the_choice_follows_device_dtype_and_cpu_flags():
    def chosen(device, dtype, flags, quantized=False):
        target = Target(device, dtype, "idefics3", quantized=quantized, cpu_flags=flags)
        return "packed_linear" in [lever.name for lever in registry.select(target)]

    assert chosen("cpu", "float32", AVX2)
    assert not chosen("cpu", "float32", frozenset({"sse4_2"}))  # no AVX2: nothing to gain
    assert not chosen("cpu", "bfloat16", AVX512_BF16)  # bf16 keeps transformers' path
    assert not chosen("cuda", "float32", AVX2)
    assert not chosen("cpu", "float32", AVX2, quantized=True)  # quantized layers are not nn.Linear


def test_a_torch_without_the_kernels_is_an_error_not_a_silent_plain_path(monkeypatch):
    monkeypatch.setattr(packed_linear, "available", lambda: False)
    with pytest.raises(DependencyError) as caught:
        registry.apply_to_model((registry.BY_NAME["packed_linear"],), torch.nn.Linear(2, 2),
                                Target("cpu", "float32", None))
    assert "VLMCLI_SKIP_LEVERS=packed_linear" in caught.value.hint


@pytest.mark.parametrize(("flags", "packed"), [(AVX2, True), (AVX512_BF16, False)])
def test_auto_packs_on_avx2_and_not_where_it_picks_bf16(tiny_idefics3, monkeypatch, flags, packed):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    loaded = model_module.load(ModelSpec(model_id=str(tiny_idefics3), offline=True), SplitSpec())
    assert loaded.dtype == (torch.float32 if packed else torch.bfloat16)
    vision = loaded.model.model.vision_model
    assert any(isinstance(m, PackedLinear) for m in vision.modules()) == packed
    assert not any(isinstance(m, PackedLinear) for m in loaded.model.model.text_model.modules())


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


def test_a_packed_model_saves_the_weights_it_was_loaded_with(tiny_idefics3, monkeypatch):
    """`vlmcli export` saves a model loaded for inference: its state dict must be the checkpoint's."""
    monkeypatch.setattr(runtime, "cpu_flags", lambda: AVX2)
    packed = model_module.load(ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True), SplitSpec())
    monkeypatch.setenv(registry.SKIP_ENV, "packed_linear")
    plain = model_module.load(ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True), SplitSpec())
    assert any(isinstance(m, PackedLinear) for m in packed.model.modules())
    saved, expected = packed.model.state_dict(), plain.model.state_dict()
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[key], expected[key]) for key in expected)


def test_a_page_reads_the_same_tokens_packed_or_not(tiny_idefics3, page_png, monkeypatch):
    run = RunSpec(model=ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True),
                  split=SplitSpec(split=True), generation=GenerationSpec(max_new_tokens=12))
    monkeypatch.setattr(runtime, "cpu_flags", lambda: AVX2)
    packed = ask([page_png], "What is written?", run)
    monkeypatch.setenv(registry.SKIP_ENV, "packed_linear")
    plain = ask([page_png], "What is written?", run)
    assert packed.token_ids == plain.token_ids and packed.image_tokens == plain.image_tokens > 0


def test_only_plain_float32_linear_layers_are_replaced():
    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision_model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4).bfloat16(),
                                                    torch.nn.LayerNorm(4))
            self.connector = torch.nn.Sequential(torch.nn.Linear(4, 2))
            self.text_model = torch.nn.Linear(4, 4)

    tower = Tower()
    assert packed_linear.pack_vision_linears(tower, ("vision_model", "connector")) == 2
    assert isinstance(tower.vision_model[0], PackedLinear) and type(tower.vision_model[1]) is torch.nn.Linear
    assert isinstance(tower.connector[0], PackedLinear) and type(tower.text_model) is torch.nn.Linear
