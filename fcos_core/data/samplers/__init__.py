"""Samplers: seeded shuffling, aspect-ratio grouping, iteration-based batching with resume."""

from __future__ import annotations

from fcos_core.data.samplers.distributed import DistributedSampler
from fcos_core.data.samplers.grouped_batch_sampler import GroupedBatchSampler
from fcos_core.data.samplers.iteration_based_batch_sampler import IterationBasedBatchSampler
from fcos_core.data.samplers.seeded_batch_sampler import SeededBatchSampler
from fcos_core.data.samplers.seeding import derive_seed

__all__ = [
    "DistributedSampler",
    "GroupedBatchSampler",
    "IterationBasedBatchSampler",
    "SeededBatchSampler",
    "derive_seed",
]
