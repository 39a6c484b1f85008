"""The vision tower's tanh GELU computed through a sigmoid on a CPU (torch).

The tanh approximation of GELU is x/2 (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3),
which is x sigmoid(2u). torch's CPU kernel for the tanh form evaluates a tanh per
element, and on AVX2 it is slower than its sigmoid kernel with the few in-place
multiplies around it (the speed benchmark's `without sigmoid_gelu` row). The two forms
agree to float32 rounding, and the tokens are the same (tests/test_sigmoid_gelu.py).
Inference only: the in-place steps keep no graph for a backward pass.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers.activations import GELUTanh

from vlmcli.model.levers.parts import children_under

TWICE_SQRT_2_OVER_PI = 2 * math.sqrt(2 / math.pi)
CUBIC = 0.044715


class SigmoidGELUTanh(torch.nn.Module):
    """GELU's tanh approximation as x * sigmoid(2u), in place on one new tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x * x
        out.mul_(CUBIC * TWICE_SQRT_2_OVER_PI).add_(TWICE_SQRT_2_OVER_PI).mul_(x)
        return out.sigmoid_().mul_(x)


def use_for_inference(model: Any, part_names: tuple[str, ...]) -> int:
    """Replace the tanh GELUs under the model's `part_names` (Family.vision_parts); how many."""
    places = children_under(model, part_names, lambda child: type(child) is GELUTanh)
    for parent, name in places:
        setattr(parent, name, SigmoidGELUTanh())
    return len(places)
