"""`GroupedBatchSampler`: batches whose members share a group id (e.g. landscape vs portrait)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch


class GroupedBatchSampler(torch.utils.data.BatchSampler):
    """Batch the indices of `sampler` so that every batch holds a single group.

    The rule (maskrcnn-benchmark's): walk the sampler's indices in order; each group fills its own
    batch of `batch_size`; batches are emitted ordered by the sampler position of their first
    element, so the sampler's order is kept as far as grouping allows. Leftover partial batches
    (one per group at most) are kept unless `drop_uneven`.

    Args:
        sampler: yields dataset indices (e.g. `DistributedSampler`).
        group_ids: the group of every dataset index (length = dataset size).
        batch_size: indices per batch.
        drop_uneven: drop batches smaller than `batch_size`.

    Example:
        group_ids = [0, 1, 0, 1, 1, 0], sampler order 0..5, batch_size 2 gives
        [[0, 2], [1, 3], [4], [5]] (or [[0, 2], [1, 3]] with drop_uneven).
    """

    def __init__(
        self,
        sampler: Iterable[int],
        group_ids: Sequence[int],
        batch_size: int,
        drop_uneven: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.sampler = sampler
        self.group_ids = [int(g) for g in group_ids]
        self.batch_size = int(batch_size)
        self.drop_uneven = drop_uneven

    def _prepare_batches(self) -> list[list[int]]:
        """All batches of one pass over the sampler, in emission order."""
        open_batches: dict[int, tuple[int, list[int]]] = {}  # group -> (first position, members)
        finished: list[tuple[int, list[int]]] = []
        for position, index in enumerate(self.sampler):
            group = self.group_ids[index]
            start, members = open_batches.setdefault(group, (position, []))
            members.append(index)
            if len(members) == self.batch_size:
                finished.append((start, members))
                del open_batches[group]
        if not self.drop_uneven:
            finished.extend(open_batches.values())
        finished.sort(key=lambda item: item[0])
        return [members for _, members in finished]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._prepare_batches())

    def __len__(self) -> int:
        return len(self._prepare_batches())
