"""The vision tower's float32 linear layers on an x86 CPU as oneDNN's prepacked GEMM (torch).

nn.Linear on a CPU calls MKL's sgemm on the weight as stored. oneDNN, also inside
torch's x86 builds, can reorder each weight once into the blocked layout its AVX2
and AVX-512 kernels read; the vision tower's products (a thousand patches per
sub-image, several thousand for a page of the ~1B OCR models) then run faster,
and they are most of a page's vision time in float32 (docs/speed.md). Which
children of the model hold the tower and connector is each family's
`vision_parts`. The arithmetic is float32 throughout, so results equal nn.Linear's
to float32 rounding (tests/test_packed_linear.py).

Where it applies (levers/registry.py): inference, float32 weights, a CPU with AVX2 and
a torch built with oneDNN; that is `auto`'s choice on CPUs without native bf16. The language
model keeps nn.Linear: its decode steps multiply one token at a time, where the
packed layout is no faster. bf16 keeps transformers' path. Linear layers inside a
quantized (bitsandbytes) or adapter (PEFT) wrapper are left as they are.
"""

from __future__ import annotations

from typing import Any

import torch

from vlmcli.model.levers import heap
from vlmcli.model.levers.parts import children_under

TRIM_EVERY_BYTES = 64 * 2**20  # freed weights the heap may hold while packing, at most
PATCHES_PER_CALL = 1024  # the rows one vision call multiplies (a 512 px sub-image of 16 px patches): oneDNN's hint


class PackedLinear(torch.nn.Module):
    """An nn.Linear for inference whose weight oneDNN has reordered; the original weight is released."""

    def __init__(self, linear: torch.nn.Linear, rows_hint: int = PATCHES_PER_CALL) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(weight, rows_hint)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        """Saved as the nn.Linear it replaced (`weight`, `bias`), so a loaded model saves a whole checkpoint."""
        destination[prefix + "weight"] = self.packed_weight.to_dense()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def available() -> bool:
    """Whether this torch has oneDNN's prepacked linear kernels (every x86 build: tests/test_packed_linear.py)."""
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def pack_vision_linears(model: Any, part_names: tuple[str, ...]) -> int:
    """Replace the plain nn.Linear layers under the model's `part_names` (its vision tower and connector:
    Family.vision_parts) with PackedLinear; how many."""
    places = children_under(model, part_names,
                            lambda child: type(child) is torch.nn.Linear and child.weight.dtype == torch.float32)
    freed_bytes = 0
    for parent, name in places:  # (parent, name) pairs only, so each replaced weight is freed as it goes
        linear = getattr(parent, name)
        freed_bytes += linear.weight.numel() * linear.weight.element_size()
        setattr(parent, name, PackedLinear(linear))
        del linear
        # The packed copy is a little larger than the weight it replaces, so it cannot reuse the freed block:
        # give the freed ones back every TRIM_EVERY_BYTES, or the heap holds both copies until the load ends
        # (trimming after each weight costs more time than the few MiB it saves at the peak).
        if freed_bytes >= TRIM_EVERY_BYTES:
            heap.return_freed_heap()
            freed_bytes = 0
    heap.return_freed_heap()
    return len(places)


def use_for_inference(model: Any, part_names: tuple[str, ...]) -> None:
    """Pack the vision tower's linear layers (a model loaded for inference where the lever registry chose this
    lever: levers/registry.py says where, and checks `available` first)."""
    if not _has_adapters(model):
        pack_vision_linears(model, part_names)


def _has_adapters(model: Any) -> bool:
    """Unmerged PEFT layers (kept on a quantized base) wrap their nn.Linear as `base_layer`; merged ones are gone."""
    return any(hasattr(module, "base_layer") for module in model.modules())
