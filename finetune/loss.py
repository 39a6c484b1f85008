"""The training loss, averaged per example or per token (torch).

transformers averages a batch's loss over its answer tokens, so an example weighs
as many tokens as its answer has: in a mixture of pages (hundreds of tokens) and
single characters (two), the characters' share of the draws becomes a hundredth
of the gradient, and replayed short-answer data is forgotten anyway. Averaging each
example's tokens first, then the examples, makes a source's share of the draws its
share of the gradient, which is what a mixture's weights promise.
"""

from __future__ import annotations

from typing import Any

import torch
from vlmcli.finetune.collate import IGNORE_INDEX


def per_example(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
    """Trainer's `compute_loss_func`: the mean over examples of each example's mean next-token loss."""
    logits = outputs.logits[:, :-1].float()
    targets = labels[:, 1:].to(logits.device)
    token_loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX,
                                                   reduction="none")
    counted = (targets != IGNORE_INDEX).sum(dim=1)
    example_loss = token_loss.sum(dim=1) / counted.clamp(min=1)
    return example_loss[counted > 0].mean()
