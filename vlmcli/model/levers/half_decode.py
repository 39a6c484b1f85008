"""The language model's linear layers with float16 weights for the decode, on a CPU in float32.

Opt-in (`--decode-dtype float16`), because it is lossy against float32. A decode step
multiplies one token by every weight of the language model, so on a CPU its time is
the time to read those weights from memory, and float16 weights are half the bytes
of float32 ones. torch's CPU kernels multiply a float16 row by a float16 matrix with
float32 accumulation (F16C converts on AVX2), so a decode step reads half as much.
Products of many rows (the prefill) are compute-bound, and float16 GEMM on a CPU
without float16 arithmetic is several times slower than float32: those multiply the
weight converted back to float32 for the call, which costs little next to the product.

What it rounds: the weights to float16 (exact for checkpoints stored in bfloat16, as
SmolVLM's and the Docling models' are, except magnitudes below float16's normal
range, about 6e-5), and a decode step's layer inputs and outputs to float16 (11
significant bits; bfloat16 keeps 8), except the largest logits, which the output
layer computes again in float32 so that near ties are decided as float32 decides
them. A step whose float16 product overflows is computed again in float32. Norms,
attention, the residual stream and the KV cache stay float32. The vision tower is
not touched: its products have 1024 rows.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from vlmcli.model.levers import heap, text_linears

DECODE_ROWS = 8  # products of at most this many rows take the float16 path: decode steps, one per batch row
HEAD_EXACT = 8  # logits per row recomputed in float32 (HalfWeightHead)


class HalfWeightLinear(torch.nn.Module):
    """An nn.Linear for inference that keeps its weight in float16 and computes as the module says above."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight16 = linear.weight.detach().to(torch.float16)
        self.bias = None if linear.bias is None else linear.bias.detach()
        self.bias16 = None if self.bias is None else self.bias.to(torch.float16)

    def decodes(self, x: torch.Tensor) -> bool:
        """Whether `x` is a decode step's few rows (the float16 path), not a prefill's many."""
        return x.numel() <= DECODE_ROWS * self.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.decodes(x):
            y = F.linear(x.to(torch.float16), self.weight16, self.bias16)
            # One reduction, in float32 so that the sum of finite logits cannot overflow: an inf or nan makes it one.
            if math.isfinite(y.sum(dtype=torch.float32)):
                return y.to(x.dtype)
        return F.linear(x, self.weight16.to(x.dtype), self.bias)

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        """Saved as the float32 nn.Linear it replaced (`weight`, `bias`)."""
        destination[prefix + "weight"] = self.weight16.to(torch.float32)
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class HalfWeightHead(HalfWeightLinear):
    """The output layer: float16 logits, with the HEAD_EXACT largest of each row computed again in float32.

    Rounding a logit to float16 moves it by up to about 0.01 at the sizes logits have, enough to swap two
    near-equal candidates. The largest few, recomputed from the float32 hidden state and the weight rows
    (float32 arithmetic), make the greedy choice float32's whenever float32's choice is among them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        if not self.decodes(x):
            return y
        top = y.topk(HEAD_EXACT, dim=-1).indices
        exact = (self.weight16[top].to(x.dtype) @ x.unsqueeze(-1)).squeeze(-1)
        if self.bias is not None:
            exact = exact + self.bias[top]
        return y.scatter(-1, top, exact)


def halve_language_model(model: Any) -> int:
    """Replace the float32 nn.Linear layers of the language model with HalfWeightLinear and its head with
    HalfWeightHead; how many."""
    places = text_linears.float32_linears(model)
    for parent, name in places:  # (parent, name) pairs only, so each float32 weight is freed as it goes
        kind = HalfWeightHead if (parent, name) == (model, "lm_head") else HalfWeightLinear
        setattr(parent, name, kind(getattr(parent, name)))
    heap.return_freed_heap()
    return len(places)
