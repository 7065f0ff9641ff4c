"""`SeededBatchSampler`: attach a per-sample augmentation seed to every index of every batch.

The protocol between samplers and datasets: in training, each batch is a list of
`(dataset_index, aug_seed)` pairs, and `dataset[(dataset_index, aug_seed)]` draws all of its random
augmentation from `numpy.random.default_rng(aug_seed)`. The seed is

    aug_seed = derive_seed(seed, iteration, slot * world_size + rank)

where `slot` is the position in this process's batch, so `slot * world_size + rank` is the
sample's position in the global batch as `DistributedSampler` interleaves it. A run resumed at
`start_iter` therefore sees the same images with the same augmentation as the uninterrupted run,
and N processes see the same (image, augmentation) pairs as one process with the same global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

from fcos_core.data.samplers.iteration_based_batch_sampler import IterationBasedBatchSampler
from fcos_core.data.samplers.seeding import derive_seed


class SeededBatchSampler:
    """Wrap an `IterationBasedBatchSampler`, yielding `[(index, aug_seed), ...]` per iteration.

    Args:
        batch_sampler: the iteration-based sampler; iteration numbers start at its `start_iter`.
        seed: base seed (cfg.SEED).
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(
        self,
        batch_sampler: IterationBasedBatchSampler,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.batch_sampler = batch_sampler
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)

    @property
    def start_iter(self) -> int:
        return self.batch_sampler.start_iter

    @property
    def num_iterations(self) -> int:
        return self.batch_sampler.num_iterations

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for iteration, batch in enumerate(self.batch_sampler, self.start_iter):
            yield [
                (index, derive_seed(self.seed, iteration, slot * self.world_size + self.rank))
                for slot, index in enumerate(batch)
            ]

    def __len__(self) -> int:
        return len(self.batch_sampler)
