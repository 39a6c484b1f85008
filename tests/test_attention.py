"""The vision tower's CPU attention (vlmcli/attention.py) gives eager attention's numbers, bit for bit."""

from __future__ import annotations

import pytest
import torch
from conftest import draw_page
from transformers import AutoModelForImageTextToText
from transformers.models.idefics3.modeling_idefics3 import eager_attention_forward

from vlmcli import model as model_module
from vlmcli.model.generate import build_inputs, merge_rows
from vlmcli.model.levers import attention
from vlmcli.prompts import user_messages
from vlmcli.specs import DType, ModelSpec, SplitSpec


def _qkv(dtype, heads=6, patches=40, requires_grad=False):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(2, heads, patches, 16, generator=generator, dtype=dtype).requires_grad_(requires_grad)
            for _ in range(3)]


def test_bf16_equals_eager_with_and_without_a_padding_mask():
    query, key, value = _qkv(torch.bfloat16)
    keep = torch.ones(2, 1, 40, 40, dtype=torch.bool)
    keep[1, :, :, 25:] = False  # the second image's last patches are padding
    additive = torch.zeros(keep.shape, dtype=torch.bfloat16).masked_fill(~keep, torch.finfo(torch.bfloat16).min)
    module = torch.nn.Module().eval()
    with torch.inference_mode():
        for mask, eager_mask in ((None, None), (keep, additive)):
            ours, _ = attention.cpu_attention(module, query, key, value, mask, scaling=0.25)
            eager, _ = eager_attention_forward(module, query, key, value, eager_mask, scaling=0.25)
            assert torch.equal(ours, eager)
    assert not torch.equal(ours[1], attention.cpu_attention(module, query, key, value, None, scaling=0.25)[0][1])


def test_float32_and_autograd_go_to_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    module = torch.nn.Module()
    query, key, value = _qkv(torch.float32)
    with torch.inference_mode():
        assert torch.equal(attention.cpu_attention(module, query, key, value, None, scaling=0.25)[0],
                           sdpa_attention_forward(module, query, key, value, None, scaling=0.25)[0])
    query, key, value = _qkv(torch.bfloat16, requires_grad=True)
    ours, _ = attention.cpu_attention(module, query, key, value, None, scaling=0.25)
    ours.sum().backward()  # training (finetune on a CPU) keeps sdpa's memory-lean backward
    assert query.grad is not None
    assert torch.equal(ours, sdpa_attention_forward(module, query, key, value, None, scaling=0.25)[0])


@pytest.mark.parametrize("family", ["idefics3", "idefics2"])
def test_a_loaded_bf16_model_encodes_pages_as_eager_does(request, family):
    """Through `model.load` (which routes the vision tower here on a CPU), on a batch with padding patches."""
    checkpoint = request.getfixturevalue(f"tiny_{family}")
    loaded = model_module.load(ModelSpec(model_id=str(checkpoint), dtype=DType.bfloat16, offline=True),
                               SplitSpec(split=True))
    assert loaded.model.config.vision_config._attn_implementation == attention.NAME
    assert loaded.model.config.text_config._attn_implementation == "sdpa"
    pages = [[draw_page((400, 300), "12.50"), draw_page((300, 400), "7")], [draw_page((1000, 200), "x")]]
    batch = merge_rows(loaded, [build_inputs(loaded, user_messages("Read.", len(images)), images)
                                for images in pages])
    eager = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch.bfloat16)
    eager.set_attn_implementation({"vision_config": "eager"})  # the rest (Idefics2's perceiver) stays on sdpa
    with torch.inference_mode():
        ours = loaded.model.model.get_image_features(batch["pixel_values"], batch.get("pixel_attention_mask"))
        theirs = eager.model.get_image_features(batch["pixel_values"], batch.get("pixel_attention_mask"))
    assert torch.equal(torch.cat(ours.pooler_output), torch.cat(theirs.pooler_output))


def test_training_and_gpu_loads_keep_sdpa(tiny_idefics3):
    loaded = model_module.load(ModelSpec(model_id=str(tiny_idefics3), offline=True), SplitSpec(split=True),
                               for_training=True)
    assert loaded.model.config.vision_config._attn_implementation == "sdpa"
    model = AutoModelForImageTextToText.from_pretrained(tiny_idefics3)
    attention.use_for_inference(model, "cuda")
    assert model.config.vision_config._attn_implementation == "sdpa"
