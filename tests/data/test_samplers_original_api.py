"""The sampler behaviour the original tests describe, on our own hand-computed cases: grouped
batches keep the sampled order (ordered by their first element), respect subsets and
drop_uneven, and ``len`` agrees with iteration; iteration-based batches cycle the batches."""

from __future__ import annotations

import itertools
import random

import pytest
from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

from fcos_core.data.samplers import GroupedBatchSampler, IterationBasedBatchSampler

GROUPS = [1, 0, 0, 1, 0, 1, 1, 0]


@pytest.mark.parametrize("batch_size", [1, 2, 4, 7])
def test_one_group_per_run_of_ten_keeps_sequential_order(batch_size):
    data = list(range(30))
    sampler = GroupedBatchSampler(SequentialSampler(data), [i // 10 for i in data], batch_size)
    assert list(itertools.chain.from_iterable(sampler)) == data


def test_sequential_batches_by_hand():
    sampler = GroupedBatchSampler(SequentialSampler(GROUPS), GROUPS, batch_size=3)
    # group 1: 0, 3, 5 | 6 ; group 0: 1, 2, 4 | 7 ; batches ordered by their first element
    assert list(sampler) == [[0, 3, 5], [1, 2, 4], [6], [7]]
    dropping = GroupedBatchSampler(SequentialSampler(GROUPS), GROUPS, 3, drop_uneven=True)
    assert list(dropping) == [[0, 3, 5], [1, 2, 4]]


def test_permuted_subset_by_hand():
    order = [7, 3, 0, 2, 5, 4, 6]  # a subset (1 is missing), permuted
    # group 0 in sampled order: 7, 2, 4 -> [7, 2], [4]; group 1: 3, 0, 5, 6 -> [3, 0], [5, 6]
    sampler = GroupedBatchSampler(order, GROUPS, batch_size=2)
    assert list(sampler) == [[7, 2], [3, 0], [5, 6], [4]] and len(sampler) == 4
    dropping = GroupedBatchSampler(order, GROUPS, batch_size=2, drop_uneven=True)
    assert list(dropping) == [[7, 2], [3, 0], [5, 6]] and len(dropping) == 3


def test_len_matches_iteration_before_and_after():
    rng = random.Random(0)
    data = list(range(25))
    groups = [rng.randint(0, 1) for _ in data]
    for drop_uneven in (False, True):
        sampler = GroupedBatchSampler(RandomSampler(data), groups, 4, drop_uneven=drop_uneven)
        length = len(sampler)
        assert len(list(sampler)) == length == len(sampler)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("num_iterations", [3, 8])
def test_iteration_based_batches_cycle(drop_last, num_iterations):
    batches = BatchSampler(SequentialSampler(range(7)), 3, drop_last=drop_last)
    cycle = [[0, 1, 2], [3, 4, 5]] + ([] if drop_last else [[6]])
    sampler = IterationBasedBatchSampler(batches, num_iterations)
    assert len(sampler) == num_iterations
    assert list(sampler) == [cycle[i % len(cycle)] for i in range(num_iterations)]


class _Sized:
    """A dataset stand-in with the two sizes ``aspect_ratio_groups`` reads."""

    def __init__(self, shapes: list[tuple[int, int]]) -> None:
        self.shapes = shapes

    def __len__(self) -> int:
        return len(self.shapes)

    def get_img_info(self, index: int) -> dict[str, int]:
        height, width = self.shapes[index]
        return {"height": height, "width": width}


def test_make_batch_data_sampler_under_the_original_name():
    from fcos_core.data.build import make_batch_data_sampler

    dataset = _Sized([(10, 20), (20, 10), (10, 20), (20, 10), (10, 20)])  # landscape 0, 2, 4
    grouped = make_batch_data_sampler(dataset, SequentialSampler(dataset), True, 2)
    assert list(grouped) == [[0, 2], [1, 3], [4]]
    # num_iters: iteration-based, cycling the plain batches; start_iter resumes where an
    # uninterrupted run would be (the original restarted the cycle there: resume was not exact)
    cycled = make_batch_data_sampler(dataset, SequentialSampler(dataset), False, 2, 5, 2)
    assert list(cycled) == [[4], [0, 1], [2, 3]]
