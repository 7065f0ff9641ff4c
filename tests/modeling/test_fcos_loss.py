"""FCOS losses: zero-box images, normalisation, and agreement with independent formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from fcos_core.modeling.fcos.locations import compute_locations
from fcos_core.modeling.fcos.loss import FCOSLossComputation, flatten_levels
from fcos_core.modeling.fcos.targets import compute_centerness_targets
from fcos_core.structures import BoxList

STRIDES = [8, 16, 32, 64, 128]
NUM_CLASSES = 4  # foreground classes C
IMAGE = 64


def _loss(**kwargs) -> FCOSLossComputation:
    args = dict(
        fpn_strides=STRIDES,
        sizes_of_interest=[64, 128, 256, 512],
        center_sampling_radius=0.0,
        iou_loss_type="iou",
        norm_reg_targets=False,
        focal_gamma=2.0,
        focal_alpha=0.25,
    )
    args.update(kwargs)
    return FCOSLossComputation(**args)


def _head_outputs(batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sizes = [max(IMAGE // s, 1) for s in STRIDES]
    cls = [torch.randn(batch, NUM_CLASSES, n, n, generator=g).requires_grad_() for n in sizes]
    reg = [(torch.rand(batch, 4, n, n, generator=g) * 20 + 1).requires_grad_() for n in sizes]
    ctr = [torch.randn(batch, 1, n, n, generator=g).requires_grad_() for n in sizes]
    locations = compute_locations(cls, STRIDES)
    return locations, cls, reg, ctr


def _target(boxes, labels) -> BoxList:
    t = BoxList(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), (IMAGE, IMAGE))
    t.add_field("labels", torch.tensor(labels, dtype=torch.long))
    return t


BOXES = [[4.0, 6.0, 30.0, 40.0], [30.0, 20.0, 60.0, 50.0]]


def test_no_ground_truth_gives_only_classification_loss():
    locations, cls, reg, ctr = _head_outputs(batch=2)
    losses = _loss(center_sampling_radius=1.5)(locations, cls, reg, ctr, [_target([], [])] * 2)
    assert losses["loss_cls"] > 0
    assert losses["loss_reg"].item() == 0.0
    assert losses["loss_centerness"].item() == 0.0
    assert all(v.requires_grad for v in losses.values())
    sum(losses.values()).backward()
    assert all((r.grad == 0).all() for r in reg)  # connected, zero gradient
    assert all(c.grad.abs().sum() > 0 for c in cls)


def test_losses_match_independent_formulas():
    locations, cls, reg, ctr = _head_outputs(batch=2)
    targets = [_target(BOXES, [1, 3]), _target(BOXES[:1], [4])]
    loss_fn = _loss(iou_loss_type="linear_iou")
    losses = loss_fn(locations, cls, reg, ctr, targets)
    labels, reg_t = loss_fn.prepare_targets(locations, targets)
    labels, reg_t = labels.reshape(-1), reg_t.reshape(-1, 4)
    pos = labels > 0
    num_pos = pos.sum()
    assert num_pos > 0
    one_hot = F.one_hot(labels, NUM_CLASSES + 1)[:, 1:].float()
    cls_flat = flatten_levels(cls)
    expected_cls = tv_sigmoid_focal_loss(cls_flat, one_hot, 0.25, 2.0, reduction="sum") / num_pos
    torch.testing.assert_close(losses["loss_cls"], expected_cls)
    ctr_t = compute_centerness_targets(reg_t[pos])
    ctr_flat = flatten_levels(ctr).reshape(-1)[pos]
    expected_ctr = F.binary_cross_entropy_with_logits(ctr_flat, ctr_t, reduction="sum") / num_pos
    torch.testing.assert_close(losses["loss_centerness"], expected_ctr)
    p, t = flatten_levels(reg)[pos], reg_t[pos]
    inter = (torch.minimum(p[:, 0], t[:, 0]) + torch.minimum(p[:, 2], t[:, 2])) * (
        torch.minimum(p[:, 1], t[:, 1]) + torch.minimum(p[:, 3], t[:, 3])
    )
    union = (p[:, 0] + p[:, 2]) * (p[:, 1] + p[:, 3]) + (t[:, 0] + t[:, 2]) * (t[:, 1] + t[:, 3])
    iou = (inter + 1) / (union - inter + 1)  # FCOS's smoothed IoU
    expected_reg = ((1 - iou) * ctr_t).sum() / ctr_t.sum()
    torch.testing.assert_close(losses["loss_reg"], expected_reg)


def test_perfect_regression_has_zero_iou_loss():
    locations, cls, reg, ctr = _head_outputs(batch=1)
    targets = [_target(BOXES, [1, 2])]
    loss_fn = _loss()
    _, reg_t = loss_fn.prepare_targets(locations, targets)
    counts = [loc.shape[0] for loc in locations]
    perfect = [
        r.reshape(1, n, n, 4).permute(0, 3, 1, 2).clamp(min=1.0)
        for r, n in zip(reg_t.split(counts, dim=1), [c.shape[-1] for c in cls])
    ]
    assert loss_fn(locations, cls, perfect, ctr, targets)["loss_reg"].item() == pytest.approx(
        0.0, abs=1e-6
    )
    assert loss_fn(locations, cls, reg, ctr, targets)["loss_reg"] > 0.1


def test_losses_are_normalised_per_positive():
    # Two copies of the same image give the same losses as one copy.
    locations, cls, reg, ctr = _head_outputs(batch=1)
    targets = [_target(BOXES, [2, 3])]
    single = _loss(center_sampling_radius=1.5)(locations, cls, reg, ctr, targets)
    double = _loss(center_sampling_radius=1.5)(
        locations,
        [torch.cat([x, x]) for x in cls],
        [torch.cat([x, x]) for x in reg],
        [torch.cat([x, x]) for x in ctr],
        targets * 2,
    )
    for key in single:
        torch.testing.assert_close(single[key], double[key])


def test_mixed_batch_and_bad_batch_size():
    locations, cls, reg, ctr = _head_outputs(batch=2)
    losses = _loss(iou_loss_type="giou", norm_reg_targets=True)(
        locations, cls, reg, ctr, [_target([], []), _target(BOXES, [1, 1])]
    )
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    with pytest.raises(ValueError, match="target BoxLists"):
        _loss()(locations, cls, reg, ctr, [_target([], [])])
