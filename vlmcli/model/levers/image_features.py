"""Encode a batch's sub-images a few at a time, ahead of `generate` (transformers).

`generate` itself encodes all of a batch's images in one `get_image_features` call
before the prefill, and that call copies the pixels and their mask (to drop padding
images) and keeps the vision tower's output for every sub-image beside the model.
Encoding here, through the same `get_image_features` on a few sub-images at a
time, and handing `generate` the result as `mm_encoder_outputs` (its pre-encoded
path) keeps only the connector's output: 64 vectors per sub-image. Attention never
crosses sub-images, so the features are the same (tests/test_image_features.py).
"""

from __future__ import annotations

from typing import Any

from transformers.modeling_outputs import BaseModelOutputWithPooling

PIXEL_KEYS = ("pixel_values", "pixel_attention_mask")
# Activations grow with a call's pixels, so calls are sized in pixels. On a CPU the point is memory: one 512 px
# sub-image (SmolVLM's) per call is no slower than several, while a tiny model's sub-images go many to a call,
# since each call costs milliseconds of Python on its own. A GPU would idle between small launches when a batch
# holds hundreds of sub-images; 64 of 512 px per call bound the activations there.
PIXELS_PER_CALL_CPU = 512 * 512
PIXELS_PER_CALL_GPU = 64 * 512 * 512


def pixels_per_call(device: str) -> int:
    """How many pixels of sub-images one vision-tower call takes on `device`."""
    return PIXELS_PER_CALL_CPU if device == "cpu" else PIXELS_PER_CALL_GPU


def encoded_images(model: Any, inputs: dict, max_pixels: int) -> dict:
    """`inputs` with the sub-images replaced by their features (`generate`'s `mm_encoder_outputs`), encoded as
    many at a time as fit in `max_pixels` (at least one)."""
    if "pixel_values" not in inputs:
        return inputs
    pixels = inputs["pixel_values"].flatten(0, 1)  # (rows x images, C, H, W): the order generate scatters into
    per_call = max(1, max_pixels // (pixels.shape[-2] * pixels.shape[-1]))
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

