"""The vision tower's residual stream made contiguous on a CPU (vlmcli/model/levers/patch_layout.py)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText

from vlmcli import model as model_module
from vlmcli.model.levers import patch_layout
from vlmcli.specs import DType, ModelSpec, SplitSpec


def _norm_inputs(model) -> list[torch.Tensor]:
    """The inputs of the vision tower's layer norms during one call, recorded by hooks."""
    seen = []
    norms = [m for m in model.model.vision_model.modules() if isinstance(m, torch.nn.LayerNorm)]
    hooks = [norm.register_forward_pre_hook(lambda module, args: seen.append(args[0])) for norm in norms]
    with torch.inference_mode():
        model.model.get_image_features(pixel_values=torch.rand(1, 2, 3, 64, 64, dtype=model.dtype))
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("family", ["idefics3", "idefics2"])
def test_the_layer_norms_read_contiguous_inputs_and_the_features_are_transformers_bit_for_bit(
        request, family, unpacked_linear):
    checkpoint = request.getfixturevalue(f"tiny_{family}")
    loaded = model_module.load(ModelSpec(model_id=str(checkpoint), dtype=DType.float32, offline=True), SplitSpec())
    plain = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch.float32)
    assert not all(x.is_contiguous() for x in _norm_inputs(plain))  # transformers' transposed layout
    assert all(x.is_contiguous() for x in _norm_inputs(loaded.model))
    pixels = torch.rand(1, 3, 3, 64, 64)
    with torch.inference_mode():
        got = loaded.model.model.get_image_features(pixel_values=pixels).pooler_output
        expected = plain.model.get_image_features(pixel_values=pixels).pooler_output
    assert torch.equal(torch.cat(list(got)), torch.cat(list(expected)))


def test_it_applies_on_a_cpu_to_a_model_with_a_vision_tower(tiny_idefics3):
    plain = AutoModelForImageTextToText.from_pretrained(tiny_idefics3, dtype=torch.float32)
    assert not patch_layout.use_for_inference(plain, "cuda")
    assert not patch_layout.use_for_inference(torch.nn.Linear(2, 2), "cpu")
    assert patch_layout.use_for_inference(plain, "cpu")


def test_in_bfloat16_the_features_are_those_of_the_transposed_stream(tiny_idefics3, monkeypatch):
    spec = ModelSpec(model_id=str(tiny_idefics3), dtype=DType.bfloat16, offline=True)
    contiguous = model_module.load(spec, SplitSpec())
    monkeypatch.setattr(patch_layout, "use_for_inference", lambda model, device: False)
    transposed = model_module.load(spec, SplitSpec())
    assert not all(x.is_contiguous() for x in _norm_inputs(transposed.model))
    pixels = torch.rand(1, 3, 3, 64, 64, dtype=torch.bfloat16)
    with torch.inference_mode():
        got = contiguous.model.model.get_image_features(pixel_values=pixels).pooler_output
        expected = transposed.model.model.get_image_features(pixel_values=pixels).pooler_output
    assert torch.equal(torch.cat(list(got)), torch.cat(list(expected)))
