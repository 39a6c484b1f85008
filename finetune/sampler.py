"""The order in which training draws examples from a mixture of sources (torch).

Each draw picks a source by its share (torch.multinomial); within a source,
examples come in a fresh random permutation, and a source that runs out starts
another permutation. So one source alone is a plain shuffle (as the Trainer's
RandomSampler), every example of a source is used before any repeats, and a small
source with a large share is cycled through. The order depends only on the seed
and the epoch (`set_epoch`, which the Trainer calls), so every DDP process draws
the same order and a resumed run skips exactly the batches it had trained on.

torch's WeightedRandomSampler draws examples with replacement, which repeats some
within an epoch while it leaves others out; `datasets.interleave_datasets` ties
the epoch to when the first or the last source runs out. Neither gives the epoch
of finetune/mixture.py, hence this sampler.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class MixtureSampler(torch.utils.data.Sampler[int]):
    """Indices into the sources laid end to end (source 0's examples first), `draws` per epoch."""

    def __init__(self, sizes: list[int], shares: list[float], draws: int, seed: int) -> None:
        if len(sizes) != len(shares) or any(n < 1 for n in sizes) or draws < 1:
            raise ValueError(f"a mixture needs a share and at least one example per source: {sizes}, {shares}")
        self.sizes, self.shares, self.draws, self.seed = list(sizes), list(shares), draws, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.draws

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())

    def order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        source_of_draw = torch.multinomial(torch.tensor(self.shares, dtype=torch.float64), self.draws,
                                           replacement=True, generator=generator)
        order = torch.empty(self.draws, dtype=torch.long)
        offsets = [sum(self.sizes[:source]) for source in range(len(self.sizes))]
        for source, (size, offset) in enumerate(zip(self.sizes, offsets)):
            slots = (source_of_draw == source).nonzero().flatten()
            rounds = -(-len(slots) // size)  # permutations needed to fill the source's draws
            for start in range(0, rounds * size, size):
                taken = slots[start:start + size]
                order[taken] = offset + torch.randperm(size, generator=generator)[: len(taken)]
        return order
