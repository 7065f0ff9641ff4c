"""NMS in both box conventions: the ``offset`` (+1 widths) and ``suppress_equal`` (>=) arguments.

The oracle is a NumPy greedy NMS written from the original maskrcnn-benchmark kernels' formulas
(float32 arithmetic, width ``min(x2) - max(x1) + offset``, areas with ``+ offset``), independent
of our reference and kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcos_core.layers import _ops, batched_nms, ml_nms, nms
from fcos_core.layers.nms import nms_reference

needs_ext = pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")
THRESHOLDS = (0.0, 0.25, 0.5, 0.6, 0.75, 1.0)


def _ext(boxes, scores, threshold, offset, suppress_equal):
    return torch.ops.fcos.nms(boxes, scores, threshold, offset, suppress_equal)


IMPLS = [pytest.param(_ext, id="extension", marks=needs_ext), pytest.param(nms_reference, id="ref")]


def oracle_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, offset: float, equal: bool):
    """Greedy NMS in float32, kept indices by decreasing score (lower index first on ties)."""
    boxes = boxes.astype(np.float32)
    off = np.float32(offset)
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[order, k] for k in range(4))
    areas = (x2 - x1 + off) * (y2 - y1 + off)
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2) - np.maximum(x1[i], x1) + off)
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2) - np.maximum(y1[i], y1) + off)
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):  # empty boxes: NaN, never removed
            iou = (inter / (areas[i] + areas - inter)).astype(np.float64)
        hit = iou >= threshold if equal else iou > threshold
        suppressed[i + 1 :] |= hit[i + 1 :]
    return np.asarray(keep, dtype=np.int64)


def _random_set(gen: torch.Generator, n: int, integer: bool):
    xy = torch.rand(n, 2, generator=gen) * 100
    wh = torch.rand(n, 2, generator=gen) * 40
    boxes = torch.cat([xy, xy + wh], dim=1)
    boxes = boxes.round() if integer else boxes
    scores = (torch.randperm(n, generator=gen).float() + 1) / (n + 1)
    return boxes, scores


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("offset", [0.0, 1.0])
@pytest.mark.parametrize("suppress_equal", [False, True])
def test_matches_the_oracle_on_random_sets(impl, offset, suppress_equal):
    gen = torch.Generator().manual_seed(int(offset) * 2 + suppress_equal)
    num_sets = 400 if impl is _ext else 60
    for k in range(num_sets):
        n = int(torch.randint(0, 50, (1,), generator=gen))
        boxes, scores = _random_set(gen, n, integer=k % 2 == 0)  # integers: exact IoU ties
        threshold = THRESHOLDS[k % len(THRESHOLDS)]
        expected = oracle_nms(boxes.numpy(), scores.numpy(), threshold, offset, suppress_equal)
        keep = impl(boxes, scores, threshold, offset, suppress_equal)
        assert keep.tolist() == expected.tolist(), f"set {k}: n={n}, threshold={threshold}"


@pytest.mark.parametrize("impl", IMPLS)
def test_plus_one_tie_exactly_at_the_threshold(impl):
    """+1 boxes [0, 0, 9, 9] and [0, 0, 9, 4]: 50 of 100 pixels, IoU exactly 0.5."""
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 4.0]])
    scores = torch.tensor([0.9, 0.8])
    assert impl(boxes, scores, 0.5, 1.0, False).tolist() == [0, 1]  # CUDA ml_nms: IoU > 0.5
    assert impl(boxes, scores, 0.5, 1.0, True).tolist() == [0]  # original CPU nms: IoU >= 0.5
    # Without the +1 the same boxes overlap 36 / 81 < 0.5.
    assert impl(boxes, scores, 0.5, 0.0, True).tolist() == [0, 1]


@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_batched_nms_separates_classes_with_the_offset(offset):
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    boxes = torch.cat([box, box, box + 1, box])  # identical or touching boxes
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([1, 2, 1, 3])
    assert batched_nms(boxes, scores, labels, 0.5, offset).tolist() == [0, 1, 3]
    assert ml_nms(boxes, scores, labels, 0.5, offset=offset).tolist() == [0, 1, 3]


def test_batched_nms_equals_per_class_oracle_with_plus_one():
    gen = torch.Generator().manual_seed(11)
    for _ in range(40):
        boxes, scores = _random_set(gen, 60, integer=True)
        labels = torch.randint(0, 4, (60,), generator=gen)
        keep = batched_nms(boxes, scores, labels, 0.5, 1.0)
        expected = []
        for label in labels.unique().tolist():
            idx = (labels == label).nonzero().squeeze(1).numpy()
            kept = oracle_nms(boxes[idx].numpy(), scores[idx].numpy(), 0.5, 1.0, False)
            expected += idx[kept].tolist()
        expected = sorted(expected, key=lambda i: -scores[i].item())
        assert keep.tolist() == expected


def test_bad_offset_is_named():
    boxes, scores = torch.zeros(2, 4), torch.zeros(2)
    with pytest.raises(ValueError, match="offset must be a finite number >= 0, got -1"):
        nms(boxes, scores, 0.5, offset=-1.0)


@needs_ext
def test_op_checks_offset_and_passes_opcheck():
    gen = torch.Generator().manual_seed(5)
    with pytest.raises(RuntimeError, match="offset must be a finite number >= 0"):
        torch.ops.fcos.nms(torch.zeros(2, 4), torch.zeros(2), 0.5, -1.0, False)
    for n in (0, 1, 40):
        boxes, scores = _random_set(gen, n, integer=True)
        torch.library.opcheck(torch.ops.fcos.nms.default, (boxes, scores, 0.5, 1.0, True))
    # Defaults: offset 0, IoU > threshold (the schema's, as before the arguments existed).
    boxes, scores = _random_set(gen, 40, integer=False)
    assert torch.equal(
        torch.ops.fcos.nms(boxes, scores, 0.5), torch.ops.fcos.nms(boxes, scores, 0.5, 0.0, False)
    )


@pytest.mark.cuda
@pytest.mark.skipif(not (_ops.HAS_EXT and torch.cuda.is_available()), reason="needs CUDA")
@pytest.mark.parametrize("offset", [0.0, 1.0])
@pytest.mark.parametrize("suppress_equal", [False, True])
def test_cuda_matches_the_oracle(offset, suppress_equal):
    gen = torch.Generator().manual_seed(7)
    for k in range(50):
        boxes, scores = _random_set(gen, 300, integer=k % 2 == 0)
        expected = oracle_nms(boxes.numpy(), scores.numpy(), 0.5, offset, suppress_equal)
        keep = torch.ops.fcos.nms(boxes.cuda(), scores.cuda(), 0.5, offset, suppress_equal)
        assert keep.cpu().tolist() == expected.tolist()
    args = (boxes.cuda(), scores.cuda(), 0.5, offset, suppress_equal)
    torch.library.opcheck(torch.ops.fcos.nms.default, args)
