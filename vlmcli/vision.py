"""Encode a batch's sub-images a few at a time, ahead of `generate` (torch, transformers).

`generate` itself encodes all of a batch's images in one `get_image_features` call
before the prefill, and that call copies the pixels and their mask (to drop padding
images) and keeps the vision tower's output for every sub-image (float32, A4 page:
about 0.1 GiB beside the model). Encoding here, through the same
`get_image_features` on a few sub-images at a time, and handing `generate` the result
as `mm_encoder_outputs` (its pre-encoded path) keeps only the connector's output: 64
vectors per sub-image. Attention never crosses sub-images, so the features are the
same (tests/test_vision.py).
"""

from __future__ import annotations

from typing import Any

from transformers.modeling_outputs import BaseModelOutputWithPooling

PIXEL_KEYS = ("pixel_values", "pixel_attention_mask")
# On a CPU the point is memory, and one sub-image at a time is no slower (float32, A4 page: 21 s vs 25 s at 4).
SUB_IMAGES_PER_CALL_CPU = 1
# On a GPU one at a time would leave it idle between small launches when many pages are read in one batch
# (32 A4 pages = 416 sub-images); 64 bound the activations (about 0.5 GB in bf16).
SUB_IMAGES_PER_CALL_GPU = 64


def sub_images_per_call(device: str) -> int:
    return SUB_IMAGES_PER_CALL_CPU if device == "cpu" else SUB_IMAGES_PER_CALL_GPU


def encoded_images(model: Any, inputs: dict, per_call: int) -> dict:
    """`inputs` with the sub-images replaced by their features (`generate`'s `mm_encoder_outputs`)."""
    if "pixel_values" not in inputs:
        return inputs
    pixels = inputs["pixel_values"].flatten(0, 1)  # (rows x images, C, H, W): the order generate scatters into
    mask = inputs.get("pixel_attention_mask")
    mask = None if mask is None else mask.flatten(0, 1)
    features = []
    for start in range(0, pixels.shape[0], per_call):
        chunk = pixels[start:start + per_call]
        if not chunk.any():  # only all-zero images: the padding of a shorter row (transformers drops them too)
            continue
        encoded = model.get_image_features(
            pixel_values=chunk.unsqueeze(0),
            pixel_attention_mask=None if mask is None else mask[start:start + per_call].unsqueeze(0))
        features.extend(encoded.pooler_output)
    rest = {key: value for key, value in inputs.items() if key not in PIXEL_KEYS}
    return {**rest, "mm_encoder_outputs": {"image": BaseModelOutputWithPooling(pooler_output=features)}}

