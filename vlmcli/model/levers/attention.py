"""The vision tower's attention on a CPU in bfloat16 (torch, transformers).

In bf16, sdpa's CPU flash kernel spends more time on its blockwise softmax than on
the products, and is no faster than in float32. Computing the attention as
transformers' eager path does (scores in bf16, softmax, then the weighted sum), a
few heads at a time so the scores stay in cache, is faster (README, "Performance").
The numbers are eager's bit for bit, padding masks included (tests/test_attention.py),
which is what the model card's snippet runs. float32, training (autograd), dropout
and other devices go to sdpa unchanged: in float32 the flash kernel is the faster one.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "vlmcli_cpu"
HEADS_PER_STEP = 4  # the fastest of 1, 3, 4, 6 and all 12 heads per step for SigLIP-B/16 at 512 px


def cpu_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0,
                  **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention-interface signature; (batch, heads, patches, head_dim) in, (b, p, h, d) out."""
    if not _eager_pays(query, dropout):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    output = torch.empty(query.shape, dtype=query.dtype)
    for start in range(0, query.shape[1], HEADS_PER_STEP):
        heads = slice(start, start + HEADS_PER_STEP)
        # The order of eager_attention_forward's operations, so the rounding (and so the result) is the same.
        scores = torch.matmul(query[:, heads], key[:, heads].transpose(-1, -2)).mul_(scaling)
        if attention_mask is not None:  # sdpa's boolean mask; eager adds the dtype's minimum, which rounds to it
            scores.masked_fill_(~attention_mask, torch.finfo(scores.dtype).min)
        torch.matmul(torch.softmax(scores, dim=-1), value[:, heads], out=output[:, heads])
    return output.transpose(1, 2).contiguous(), None


def _eager_pays(query: torch.Tensor, dropout: float) -> bool:
    return (query.device.type == "cpu" and query.dtype == torch.bfloat16 and not dropout
            and not torch.is_grad_enabled())


def use_for_inference(model: Any, device: str) -> None:
    """Route the vision tower's attention through `cpu_attention` (a model loaded for inference on a CPU)."""
    if device != "cpu" or getattr(model.config, "vision_config", None) is None:
        return
    AttentionInterface.register(NAME, cpu_attention)
    # Masks as sdpa gets them (None when no patch is padding); without one, transformers would pass no mask at all.
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation({"vision_config": NAME})
