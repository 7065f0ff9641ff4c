"""NMS: kernel and reference against torchvision, edge cases, per-class NMS, op registration."""

from __future__ import annotations

import pytest
import torch
import torchvision

from fcos_core.layers import _ops, batched_nms, ml_nms, nms
from fcos_core.layers.nms import nms_reference

NUM_RANDOM_SETS = 3000
NUM_REFERENCE_SETS = 300
MAX_SET_SIZE = 60
THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 1.0)


def random_boxes(gen: torch.Generator, n: int, integer: bool) -> torch.Tensor:
    """Tensor[n, 4] xyxy boxes in a 100 x 100 image; integer corners make exact IoU ties."""
    xy = torch.rand(n, 2, generator=gen) * 100
    wh = torch.rand(n, 2, generator=gen) * 40
    boxes = torch.cat([xy, xy + wh], dim=1)
    return boxes.round() if integer else boxes


def distinct_scores(gen: torch.Generator, n: int) -> torch.Tensor:
    """Tensor[n] scores without ties (a shuffled ladder)."""
    return (torch.randperm(n, generator=gen).float() + 1) / (n + 1)


def check_random_sets(nms_impl, num_sets: int) -> None:
    """Keep lists equal torchvision's on ``num_sets`` random sets (scores have no ties)."""
    gen = torch.Generator().manual_seed(0)
    for k in range(num_sets):
        n = int(torch.randint(0, MAX_SET_SIZE + 1, (1,), generator=gen))
        boxes = random_boxes(gen, n, integer=k % 2 == 1)
        scores = distinct_scores(gen, n)
        threshold = THRESHOLDS[k % len(THRESHOLDS)]
        expected = torchvision.ops.nms(boxes, scores, threshold)
        keep = nms_impl(boxes, scores, threshold)
        assert keep.dtype == torch.int64
        assert torch.equal(keep, expected), f"set {k}: n={n}, threshold={threshold}"


@pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")
def test_kernel_matches_torchvision_on_thousands_of_random_sets():
    check_random_sets(torch.ops.fcos.nms, NUM_RANDOM_SETS)


def test_reference_matches_torchvision_on_random_sets():
    # The reference loops in Python once per kept box: fewer sets keep the test fast.
    check_random_sets(nms_reference, NUM_REFERENCE_SETS)


@pytest.mark.parametrize("n", [500, 2000])
def test_matches_torchvision_on_large_sets(nms_impl, n):
    gen = torch.Generator().manual_seed(n)
    boxes = random_boxes(gen, n, integer=False) * 5
    scores = distinct_scores(gen, n)
    assert torch.equal(nms_impl(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))


def test_keep_is_sorted_by_decreasing_score(nms_impl):
    gen = torch.Generator().manual_seed(1)
    boxes, scores = random_boxes(gen, 200, integer=False), distinct_scores(gen, 200)
    keep = nms_impl(boxes, scores, 0.5)
    assert torch.all(scores[keep][:-1] > scores[keep][1:])


def test_tied_scores_keep_lower_index_first(nms_impl):
    boxes = torch.tensor([[0.0, 0, 1, 1], [5, 5, 6, 6], [10, 10, 11, 11]])
    scores = torch.tensor([0.5, 0.9, 0.5])
    assert nms_impl(boxes, scores, 0.5).tolist() == [1, 0, 2]


def test_non_contiguous_inputs(nms_impl):
    gen = torch.Generator().manual_seed(6)
    table = torch.cat([random_boxes(gen, 100, integer=False), torch.rand(100, 1)], dim=1)
    boxes, scores = table[::2, :4], table[::2, 4]  # strided views
    assert not boxes.is_contiguous() and not scores.is_contiguous()
    expected = torchvision.ops.nms(boxes.contiguous(), scores.contiguous(), 0.5)
    assert torch.equal(nms_impl(boxes, scores, 0.5), expected)


def test_empty_input(nms_impl):
    keep = nms_impl(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64


def test_all_suppressed_but_best(nms_impl):
    boxes = torch.tensor([[10.0, 10, 50, 50]]).repeat(7, 1)
    scores = torch.tensor([0.1, 0.2, 0.9, 0.3, 0.4, 0.5, 0.6])
    assert nms_impl(boxes, scores, 0.5).tolist() == [2]


def test_iou_exactly_at_threshold_is_kept(nms_impl):
    # IoU of these two boxes is 50 / 100 = 0.5 exactly.
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5]])
    scores = torch.tensor([0.9, 0.8])
    assert nms_impl(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms_impl(boxes, scores, 0.49).tolist() == [0]


def test_zero_area_boxes_are_kept(nms_impl):
    boxes = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 4, 4]])
    scores = torch.tensor([0.3, 0.2, 0.1])
    assert nms_impl(boxes, scores, 0.5).tolist() == [0, 1, 2]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes(nms_impl, dtype):
    gen = torch.Generator().manual_seed(2)
    boxes = random_boxes(gen, 300, integer=True)  # exactly representable in every dtype
    scores = distinct_scores(gen, 300)
    expected = torchvision.ops.nms(boxes, scores, 0.5)
    assert torch.equal(nms_impl(boxes.to(dtype), scores.to(torch.float64), 0.5), expected)


def test_wrapper_uses_the_active_path():
    gen = torch.Generator().manual_seed(3)
    boxes, scores = random_boxes(gen, 100, integer=False), distinct_scores(gen, 100)
    assert torch.equal(nms(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))


BAD_INPUTS = [
    (torch.zeros(5, 3), torch.zeros(5), ValueError, r"\[5, 3\]"),
    (torch.zeros(5), torch.zeros(5), ValueError, r"\[5\]"),
    (torch.zeros(5, 4), torch.zeros(5, 1), ValueError, r"\[5, 1\]"),
    (torch.zeros(5, 4), torch.zeros(4), ValueError, r"\[5, 4\].*\[4\]"),
    (torch.zeros(5, 4, dtype=torch.int64), torch.zeros(5), TypeError, "torch.int64"),
    (torch.zeros(5, 4), torch.zeros(5, dtype=torch.int32), TypeError, "torch.int32"),
]


@pytest.mark.parametrize("boxes,scores,error,pattern", BAD_INPUTS)
def test_bad_inputs_raise_clear_errors(boxes, scores, error, pattern):
    with pytest.raises(error, match=pattern):
        nms(boxes, scores, 0.5)


@pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")
@pytest.mark.parametrize("boxes,scores,error,pattern", BAD_INPUTS)
def test_bad_inputs_to_the_op_raise_clear_errors(boxes, scores, error, pattern):
    pattern = pattern.replace("torch.int64", "Long").replace("torch.int32", "Int")
    with pytest.raises(RuntimeError, match=pattern):
        torch.ops.fcos.nms(boxes, scores, 0.5)


def test_batched_nms_never_suppresses_across_classes():
    boxes = torch.tensor([[0.0, 0, 10, 10]]).repeat(4, 1)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([1, 2, 1, 3])
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == [0, 1, 3]
    assert ml_nms(boxes, scores, labels, 0.5).tolist() == [0, 1, 3]


def test_batched_nms_equals_per_class_nms():
    gen = torch.Generator().manual_seed(4)
    for _ in range(50):
        boxes, scores = random_boxes(gen, 80, integer=False), distinct_scores(gen, 80)
        labels = torch.randint(1, 6, (80,), generator=gen)
        keep = batched_nms(boxes, scores, labels, 0.5)
        per_class = [
            idx[nms(boxes[idx], scores[idx], 0.5)]
            for idx in (torch.nonzero(labels == c).flatten() for c in labels.unique())
        ]
        expected = torch.cat(per_class)
        expected = expected[scores[expected].argsort(descending=True)]
        assert torch.equal(keep, expected)


def test_batched_nms_empty_and_bad_idxs():
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).shape == (0,)
    with pytest.raises(ValueError, match=r"idxs.*\[2\]"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2), 0.5)


@pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")
def test_opcheck():
    gen = torch.Generator().manual_seed(5)
    for n in (0, 1, 40):
        boxes, scores = random_boxes(gen, n, integer=False), torch.rand(n, generator=gen)
        torch.library.opcheck(torch.ops.fcos.nms.default, (boxes, scores, 0.5))


@pytest.mark.cuda
@pytest.mark.skipif(not (_ops.HAS_EXT and torch.cuda.is_available()), reason="needs CUDA")
@pytest.mark.parametrize("n", [0, 1, 100, 5000])
def test_cuda_matches_cpu(n):
    gen = torch.Generator().manual_seed(n)
    boxes, scores = random_boxes(gen, n, integer=n % 2 == 0) * 3, distinct_scores(gen, n)
    expected = torch.ops.fcos.nms(boxes, scores, 0.5)
    keep = torch.ops.fcos.nms(boxes.cuda(), scores.cuda(), 0.5)
    assert keep.device.type == "cuda"
    assert torch.equal(keep.cpu(), expected)
    torch.library.opcheck(torch.ops.fcos.nms.default, (boxes.cuda(), scores.cuda(), 0.5))
