"""Which segments each rank trains on at each step, and the DataLoader that prepares them ahead of the model.

An epoch is a permutation (seeded by seed + epoch) of the source's segment slots; rank r of W takes every W-th item,
and step s reads batch s mod steps_per_epoch of epoch s // steps_per_epoch. So the data order is a pure function of
(seed, world size, step): nothing to save for an exact resume but the step, and ranks never see the same item in an
epoch (DistributedSampler's contract, without its per-epoch state).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from apucodec.codec.data import SegmentSource


class SegmentDataset(Dataset):
    """Map-style view of a SegmentSource: key (epoch, index) -> [1, segment] float32 tensor."""

    def __init__(self, source: SegmentSource, seed: int) -> None:
        self.source = source
        self.seed = seed

    def __len__(self) -> int:
        return self.source.slots

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        epoch, index = key
        return torch.from_numpy(self.source.item(self.seed, epoch, index))


class StepBatches(Sampler[list[tuple[int, int]]]):
    """Batch keys for steps [start, end) of one rank."""

    def __init__(self, slots: int, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 start: int = 0, end: int = 0) -> None:
        self.slots, self.batch_size, self.rank, self.world = slots, batch_size, rank, world_size
        self.seed, self.start, self.end = seed, start, end
        # An epoch smaller than one global batch wraps around (like DistributedSampler's padding).
        self.epoch_items = max(slots, batch_size * world_size)
        self.steps_per_epoch = max(1, self.epoch_items // (batch_size * world_size))
        self._cached: tuple[int, torch.Tensor] | None = None

    def _rank_items(self, epoch: int) -> torch.Tensor:
        if self._cached is None or self._cached[0] != epoch:
            order = torch.randperm(self.epoch_items, generator=torch.Generator().manual_seed(self.seed + epoch))
            self._cached = (epoch, order[self.rank::self.world] % self.slots)
        return self._cached[1]

    def keys(self, step: int) -> list[tuple[int, int]]:
        epoch, position = divmod(step, self.steps_per_epoch)
        mine = self._rank_items(epoch)[position * self.batch_size:(position + 1) * self.batch_size]
        return [(epoch, int(i)) for i in mine]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.end):
            yield self.keys(step)

    def __len__(self) -> int:
        return max(0, self.end - self.start)


def make_loader(source: SegmentSource, batch_size: int, *, seed: int, start: int, end: int, rank: int = 0,
                world_size: int = 1, workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """Batches [B, 1, segment] for steps [start, end), prepared by `workers` processes (0: in the training loop).

    Items are deterministic per key, so the batches are identical with any number of workers. The loader gets its
    own generator: by default a DataLoader iterator draws its worker base seed from torch's global generator, which
    would shift the quantizer's random stream between a resumed run and an uninterrupted one.
    """
    sampler = StepBatches(source.slots, batch_size, rank=rank, world_size=world_size, seed=seed,
                          start=start, end=end)
    return DataLoader(SegmentDataset(source, seed), batch_sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=False,
                      prefetch_factor=4 if workers else None, generator=torch.Generator().manual_seed(seed))
