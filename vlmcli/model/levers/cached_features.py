"""A page's encoded image features as bytes, and back into a page's inputs (torch).

A second question about a page needs the same vision-tower output as the
first: stored as the connector's output in the model's own dtype, put back as
`mm_encoder_outputs` (generate's pre-encoded path), it gives the same tokens as
encoding the pixels again (tests/test_docqa_model.py) while skipping the tower.
"""

from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vlmcli.model.levers.image_features import PIXEL_KEYS, encoded_images, pixels_per_call

Stored = tuple[bytes, str, tuple[int, ...]]  # raw bytes, dtype name, shape (sub-images, tokens, hidden)


def encode(loaded, inputs: dict) -> tuple[dict, Stored]:
    """`inputs` with their sub-images encoded (as `generate` would), and those features as bytes to keep."""
    with torch.inference_mode():
        encoded = encoded_images(loaded.model, inputs, pixels_per_call(loaded.device))
    features = torch.stack(list(encoded["mm_encoder_outputs"]["image"].pooler_output)).cpu().contiguous()
    data = features.view(torch.uint8).numpy().tobytes()
    return encoded, (data, str(features.dtype).removeprefix("torch."), tuple(features.shape))


def restore(loaded, inputs: dict, stored: Stored) -> dict | None:
    """`inputs` with the stored features in place of their pixels; None if they do not fit these inputs (another
    dtype, or another number of image tokens)."""
    data, dtype_name, shape = stored
    dtype = getattr(torch, dtype_name, None)
    image_tokens = int((inputs["input_ids"] == loaded.image_token_id).sum())
    if dtype != loaded.dtype or len(shape) != 3 or shape[0] * shape[1] != image_tokens:
        return None
    features = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape).to(loaded.device)
    rest = {key: value for key, value in inputs.items() if key not in PIXEL_KEYS}
    return {**rest, "mm_encoder_outputs": {"image": BaseModelOutputWithPooling(pooler_output=list(features))}}
