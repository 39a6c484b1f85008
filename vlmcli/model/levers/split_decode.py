"""The language model's decode products on a CPU in float32, split into row blocks run on all of torch's threads.

A decode step multiplies a few rows (one per sequence) by every weight of the
language model, so its time is the time to read those weights from memory.
nn.Linear hands a one-row product to BLAS as a matrix-vector product, which reads
the weight on one thread however many torch has. The same product written as a
batch of row blocks of the weight (a view, no copy) goes through torch's bmm, which
runs the blocks on all of torch's threads: the step reads its weights with every
core. Products of many rows (a page's prefill) keep nn.Linear, whose GEMM uses
every core there.

The arithmetic is float32: results equal nn.Linear's to float32 rounding (the kernels
sum in different orders) and a page reads the same tokens (tests/test_split_decode.py;
token agreement over longer reads in benchmarks/agreement.py). The layers keep their
parameters, so a head tied to the embeddings stays tied and checkpoints save as
before. bf16 and GPUs keep nn.Linear; `--decode-dtype float16` has its own layers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from vlmcli.model.levers import text_linears

# Products of at most this many rows are split: decode steps (one row per sequence) and short prefills. Up to
# here the split measured faster than nn.Linear on 2 threads; at a page's prefill (about 900 rows) they are level.
SPLIT_ROWS = 64
BLOCKS_PER_THREAD = 2  # more blocks than threads, so a thread that finishes early takes another


class SplitDecodeLinear(torch.nn.Linear):
    """An nn.Linear, with the same parameter objects, whose products of few rows run as described above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features
        blocked = self._blocked() if rows <= SPLIT_ROWS else None
        if blocked is None:
            return F.linear(x, self.weight, self.bias)
        y = torch.bmm(blocked, x.reshape(rows, self.in_features).t().expand(blocked.shape[0], -1, -1))
        y = y.view(x.shape[:-1] + (self.out_features,)) if rows == 1 else (
            y.reshape(self.out_features, rows).t().reshape(x.shape[:-1] + (self.out_features,)))
        return y if self.bias is None else y + self.bias

    def _blocked(self) -> torch.Tensor | None:
        """The weight viewed as (blocks, rows per block, in_features) for torch's thread count now; None: no split.
        Kept between calls (a decode step calls every layer once), made again when the threads or weight change."""
        threads, weight = torch.get_num_threads(), self.weight
        cached = self.__dict__.get("_blocked_for")
        if cached is None or cached[0] != threads or cached[1] is not weight:
            blocks = row_blocks(self.out_features, threads)
            view = (weight.detach().view(blocks, self.out_features // blocks, self.in_features)
                    if blocks > 1 and weight.is_contiguous() else None)
            cached = self.__dict__["_blocked_for"] = (threads, weight, view)
        return cached[2]


def row_blocks(out_features: int, threads: int) -> int:
    """How many equal row blocks to cut a weight of `out_features` rows into for `threads` threads (1: no split)."""
    blocks = max(BLOCKS_PER_THREAD * threads, 2)
    while out_features % blocks:
        blocks -= 1
    return blocks


def split_language_model(model: Any) -> int:
    """Replace the float32 nn.Linear layers of the language model and its head with SplitDecodeLinear; how many."""
    places = text_linears.float32_linears(model)
    for parent, name in places:
        setattr(parent, name, _sharing(SplitDecodeLinear, getattr(parent, name)))
    return len(places)


def unsplit_language_model(model: Any) -> int:
    """The inverse of split_language_model (nn.Linear again, same parameters): the reference for agreement."""
    places = [(parent, name) for parent in model.modules() for name, child in parent.named_children()
              if type(child) is SplitDecodeLinear]
    for parent, name in places:
        setattr(parent, name, _sharing(torch.nn.Linear, getattr(parent, name)))
    return len(places)


def _sharing(kind: type[torch.nn.Linear], linear: torch.nn.Linear) -> torch.nn.Linear:
    """A `kind` holding `linear`'s own weight and bias objects (no copy; a tied head stays tied)."""
    shared = kind.__new__(kind)
    torch.nn.Module.__init__(shared)
    shared.in_features, shared.out_features = linear.in_features, linear.out_features
    shared.weight, shared.bias = linear.weight, linear.bias
    return shared
