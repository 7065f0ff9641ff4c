"""Samplers: grouping rule, iteration-based resume, seeded shuffling, per-sample seeds."""

from __future__ import annotations

import pytest
import torch

from fcos_core.data.samplers import (
    DistributedSampler,
    GroupedBatchSampler,
    IterationBasedBatchSampler,
    SeededBatchSampler,
    derive_seed,
)


class _FixedOrder(list):
    """A 'sampler' that yields a fixed order (a list is iterable)."""


def test_grouped_batches_hand_computed():
    group_ids = [0, 1, 0, 1, 1, 0, 0, 1, 0]
    order = _FixedOrder([8, 1, 5, 0, 3, 2, 4, 7, 6])
    sampler = GroupedBatchSampler(order, group_ids, batch_size=2)
    assert list(sampler) == [[8, 5], [1, 3], [0, 2], [4, 7], [6]]
    assert len(sampler) == 5
    dropping = GroupedBatchSampler(order, group_ids, batch_size=2, drop_uneven=True)
    assert list(dropping) == [[8, 5], [1, 3], [0, 2], [4, 7]]
    assert len(dropping) == 4


def test_grouped_partial_batch_keeps_position_of_its_first_element():
    sampler = GroupedBatchSampler(_FixedOrder([0, 1, 2, 3]), [0, 1, 1, 1], batch_size=2)
    assert list(sampler) == [[0], [1, 2], [3]]
    dropping = GroupedBatchSampler(_FixedOrder([0, 1, 2, 3]), [0, 1, 1, 1], 2, drop_uneven=True)
    assert list(dropping) == [[1, 2]]


def test_grouped_batch_size_three_two_groups():
    group_ids = [1, 1, 0, 1, 0, 0, 1, 0, 1, 1]
    sampler = GroupedBatchSampler(_FixedOrder(range(10)), group_ids, batch_size=3)
    # group 1: 0,1,3 | 6,8,9 ; group 0: 2,4,5 | 7 ; ordered by first element position
    assert list(sampler) == [[0, 1, 3], [2, 4, 5], [6, 8, 9], [7]]


def test_distributed_sampler_is_a_pure_function_of_seed_and_epoch():
    data = list(range(23))
    a = DistributedSampler(data, num_replicas=1, rank=0, seed=5)
    torch.manual_seed(123)  # global state must not matter
    first = list(a)
    torch.manual_seed(999)
    b = DistributedSampler(data, num_replicas=1, rank=0, seed=5)
    assert list(b) == first and sorted(first) == data
    a.set_epoch(1)
    assert list(a) != first
    assert list(DistributedSampler(data, 1, 0, seed=6)) != first


def test_distributed_sampler_ranks_partition_the_padded_permutation():
    data = list(range(10))
    parts = [list(DistributedSampler(data, num_replicas=3, rank=r, seed=1)) for r in range(3)]
    assert all(len(p) == 4 for p in parts)  # ceil(10 / 3)
    flat = [i for p in parts for i in p]
    assert set(flat) == set(data) and len(flat) == 12  # two indices repeated as padding
    unshuffled = DistributedSampler(data, num_replicas=2, rank=1, shuffle=False)
    assert list(unshuffled) == [1, 3, 5, 7, 9]


def _stream(start_iter, num_iterations=17, batch=3, seed=7, grouped=True):
    data = list(range(10))
    sampler = DistributedSampler(data, num_replicas=1, rank=0, seed=seed)
    if grouped:
        inner = GroupedBatchSampler(sampler, [i % 2 for i in data], batch)
    else:
        inner = torch.utils.data.BatchSampler(sampler, batch, drop_last=False)
    return SeededBatchSampler(IterationBasedBatchSampler(inner, num_iterations, start_iter), seed)


def test_iteration_based_yields_exactly_num_iterations_and_reshuffles():
    batches = list(IterationBasedBatchSampler(_stream(0).batch_sampler.batch_sampler, 17))
    assert len(batches) == 17
    # 10 images in groups of 5, batch 3 -> 4 batches per epoch; epochs are reshuffled
    assert batches[0:4] != batches[4:8]
    assert sorted(i for b in batches[0:4] for i in b) == list(range(10))


@pytest.mark.parametrize("start_iter", [0, 1, 3, 4, 5, 11, 16, 17])
@pytest.mark.parametrize("grouped", [True, False])
def test_resume_equals_the_tail_of_the_uninterrupted_stream(start_iter, grouped):
    full = list(_stream(0, grouped=grouped))
    assert len(full) == 17
    resumed = list(_stream(start_iter, grouped=grouped))  # fresh objects, like a new process
    assert resumed == full[start_iter:]


def test_per_sample_seeds_follow_iteration_and_slot():
    full = list(_stream(0))
    for iteration, batch in enumerate(full):
        for slot, (_, aug_seed) in enumerate(batch):
            assert aug_seed == derive_seed(7, iteration, slot)
    seeds = [s for batch in full for _, s in batch]
    assert len(set(seeds)) == len(seeds)


def test_two_processes_see_the_same_global_batches_and_seeds_as_one():
    data = list(range(12))

    def run(world, rank, per_process):
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, seed=3)
        inner = torch.utils.data.BatchSampler(sampler, per_process, drop_last=False)
        return list(SeededBatchSampler(IterationBasedBatchSampler(inner, 9), 3, rank, world))

    single = run(1, 0, 4)
    ranks = [run(2, r, 2) for r in range(2)]
    for it in range(9):
        assert sorted(single[it]) == sorted(ranks[0][it] + ranks[1][it])


def test_derive_seed_mixes_coordinates():
    assert derive_seed(0, 1) != derive_seed(1, 0)
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    assert 0 <= derive_seed(2**40, 5) < 2**63
    with pytest.raises(ValueError):
        derive_seed(-1)
