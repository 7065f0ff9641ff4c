"""`DistributedSampler`: each process gets an equal, disjoint share of a seeded permutation."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import torch

from fcos_core.data.samplers.seeding import derive_seed
from fcos_core.utils.comm import get_world_and_rank


class DistributedSampler(torch.utils.data.Sampler[int]):
    """Shuffled (or ordered) dataset indices, split across `num_replicas` processes.

    The permutation of epoch `e` is drawn from a `torch.Generator` seeded with
    `derive_seed(seed, e)`, so the index stream is a pure function of (seed, epoch) and does not
    depend on global RNG state. The permutation is padded by repeating its head so every process
    gets `ceil(len(dataset) / num_replicas)` indices; process `rank` takes positions
    `rank, rank + num_replicas, ...`. With one replica this is a plain seeded shuffle.

    Args:
        dataset: anything with `__len__`.
        num_replicas: number of processes (default: the process group's world size, else 1).
        rank: this process (default: the process group's rank, else 0).
        shuffle: permute indices (True) or keep 0..N-1 order (False).
        seed: base seed of the permutation.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        world, own_rank = get_world_and_rank()
        self.num_replicas = world if num_replicas is None else int(num_replicas)
        self.rank = own_rank if rank is None else int(rank)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank must be in [0, {self.num_replicas}), got {self.rank}")
        self.dataset_size = len(dataset)
        self.num_samples = math.ceil(self.dataset_size / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of `epoch` for the next iteration over the sampler."""
        self.epoch = int(epoch)

    def _global_order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.dataset_size))
        generator = torch.Generator()
        generator.manual_seed(derive_seed(self.seed, self.epoch))
        return torch.randperm(self.dataset_size, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        order = self._global_order()
        while len(order) < self.total_size:
            order += order[: self.total_size - len(order)]
        return iter(order[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples
