"""The vision tower's residual stream laid out row by row on a CPU (torch).

The patch embedding is a convolution whose output (channels, rows, columns) the
tower flattens and transposes into (patches, channels) without copying it. Every
later sum (position embeddings, each layer's residual) keeps that transposed
layout, so each layer norm first copies its input into a contiguous one and each
sum reads across strides: a copy and a slower sum per norm, for every sub-image.
Copying the embeddings once, as the tower starts, makes the whole stream
contiguous. Values are untouched, so the features are transformers' bit for bit
(tests/test_patch_layout.py); only the layout, and so the time, changes.
"""

from __future__ import annotations

from typing import Any

import torch


def use_for_inference(model: Any, device: str) -> bool:
    """Make the vision tower's embeddings contiguous (a model loaded for inference on a CPU); whether it did."""
    embeddings = _vision_embeddings(model)
    if device != "cpu" or embeddings is None:
        return False
    embeddings.register_forward_hook(_contiguous_output)
    return True


def _contiguous_output(module: Any, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output.contiguous()


def _vision_embeddings(model: Any) -> Any:
    vision_model = getattr(getattr(model, "model", model), "vision_model", None)
    return getattr(vision_model, "embeddings", None)
