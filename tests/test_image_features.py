"""Sub-images encoded a few at a time ahead of `generate` (vlmcli/vision.py) give transformers' own features."""

from __future__ import annotations

import pytest
import torch
from conftest import draw_page
from transformers import AutoModelForImageTextToText

from vlmcli import model as model_module
from vlmcli.model.generate import build_inputs, merge_rows
from vlmcli.model.levers.image_features import encoded_images
from vlmcli.prompts import user_messages
from vlmcli.specs import DType, ModelSpec, SplitSpec


def _loaded(checkpoint):
    return model_module.load(ModelSpec(model_id=str(checkpoint), dtype=DType.float32, offline=True),
                             SplitSpec(split=True))


@pytest.mark.parametrize("family", ["idefics3", "idefics2"])
def test_features_equal_get_image_features_of_the_whole_batch(request, family, unpacked_linear):
    """Two rows with different sub-image counts (so the shorter row has all-zero padding images), in calls
    of 1, 2 and all sub-images: the features equal transformers' one call on the whole batch (with its int64
    pixel mask), bit for bit (with nn.Linear; packed layers round differently, tests/test_packed_linear.py)."""
    checkpoint = request.getfixturevalue(f"tiny_{family}")
    loaded = _loaded(checkpoint)
    pages = [[draw_page((400, 300), "12.50"), draw_page((300, 400), "7")], [draw_page((1000, 200), "x")]]
    rows = [build_inputs(loaded, user_messages("Read.", len(images)), images) for images in pages]
    batch = merge_rows(loaded, rows)
    assert batch["pixel_values"].shape[1] > 1
    assert not batch["pixel_values"][1, -1].any(), "the second row should end in a padding image"
    plain = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch.float32)
    mask = batch.get("pixel_attention_mask")  # Idefics3's lean processor makes it boolean; transformers', int64
    with torch.no_grad():
        whole = torch.cat(plain.model.get_image_features(
            batch["pixel_values"], None if mask is None else mask.long()).pooler_output)
        sub_image_px = batch["pixel_values"].shape[-2] * batch["pixel_values"].shape[-1]
        for max_pixels in (1, 2 * sub_image_px, 1000 * sub_image_px):  # 1, 2 and all sub-images per call
            encoded = encoded_images(loaded.model, batch, max_pixels)
            assert "pixel_values" not in encoded and "pixel_attention_mask" not in encoded
            assert torch.equal(encoded["input_ids"], batch["input_ids"])
            assert torch.equal(torch.cat(encoded["mm_encoder_outputs"]["image"].pooler_output), whole)


def test_inputs_without_images_pass_through(tiny_idefics3):
    loaded = _loaded(tiny_idefics3)
    inputs = {"input_ids": torch.tensor([[1, 2]]), "attention_mask": torch.tensor([[1, 1]])}
    assert encoded_images(loaded.model, inputs, 10**6) is inputs


def test_a_loop_retry_reuses_the_encoded_images(tiny_idefics3, monkeypatch):
    """generate swaps the pixels for features in the inputs it is given, so a second call skips the tower."""
    from vlmcli.model.generate import generate_from_inputs
    from vlmcli.specs import GenerationSpec

    loaded = _loaded(tiny_idefics3)
    inputs = build_inputs(loaded, user_messages("Read.", 1), [draw_page((400, 300), "12.50")])
    calls = []
    encode = loaded.model.model.get_image_features
    monkeypatch.setattr(loaded.model.model, "get_image_features", lambda *a, **k: calls.append(1) or encode(*a, **k))
    first = generate_from_inputs(loaded, inputs, GenerationSpec(max_new_tokens=6))
    encoded_calls = len(calls)
    second = generate_from_inputs(loaded, inputs, GenerationSpec(max_new_tokens=6))
    assert encoded_calls >= 1 and len(calls) == encoded_calls
    assert "pixel_values" not in inputs and first.token_ids == second.token_ids
