"""Padding rows of different sizes into one batch (torch): token rows for generation and training, image stacks.

Generation pads token rows on the left, so every row's next token comes after its
last one; training pads on the right. Image stacks are padded with zeros, which
the models drop: a row with fewer sub-images gets all-zero ones, and smaller
images (Idefics2) are zero-padded at the bottom and right.
"""

from __future__ import annotations

import torch


def padded_rows(rows: list[torch.Tensor], value: int, *, left: bool) -> torch.Tensor:
    """1-D tensors of different lengths as one (rows, longest) tensor, filled with `value`."""
    length = max(len(row) for row in rows)
    out = torch.full((len(rows), length), value, dtype=rows[0].dtype, device=rows[0].device)
    for index, row in enumerate(rows):
        if left:
            out[index, length - len(row):] = row
        else:
            out[index, :len(row)] = row
    return out


def zero_padded_stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Tensors of equal rank stacked along a new first dimension, each zero-padded at the end of every dimension."""
    shape = [len(tensors)] + [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    out = torch.zeros(shape, dtype=tensors[0].dtype, device=tensors[0].device)
    for index, tensor in enumerate(tensors):
        out[(index, *[slice(0, n) for n in tensor.shape])] = tensor
    return out
