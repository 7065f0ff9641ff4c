"""IOULoss on hand-computed (l, t, r, b) boxes."""

from __future__ import annotations

import math

import pytest
import torch

from fcos_core.layers import IOULoss

# pred is a 2 x 2 box around the point, target a 4 x 4 one: I = 4, U = 16, enclosing area 16.
NESTED = (torch.tensor([[1.0, 1, 1, 1]]), torch.tensor([[2.0, 2, 2, 2]]))
# pred extends right/down from the point, target left/up: I = 0, U = 8, enclosing area 16.
DISJOINT = (torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[2.0, 2, 0, 0]]))


@pytest.mark.parametrize(
    "loss_type,boxes,expected",
    [
        ("iou", NESTED, -math.log(0.25)),
        ("linear_iou", NESTED, 0.75),
        ("giou", NESTED, 0.75),
        ("linear_iou", DISJOINT, 1.0),
        ("giou", DISJOINT, 1.5),
    ],
)
def test_exact_values_without_smoothing(loss_type, boxes, expected):
    loss = IOULoss(loss_type, smooth=0.0)(*boxes)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_fcos_smoothing_keeps_disjoint_iou_finite():
    # (I + 1) / (U + 1) = 1 / 9
    assert IOULoss("iou")(*DISJOINT).item() == pytest.approx(math.log(9.0), rel=1e-6)
    assert IOULoss("iou")(*NESTED).item() == pytest.approx(-math.log(5.0 / 17.0), rel=1e-6)


@pytest.mark.parametrize("loss_type", ["iou", "linear_iou", "giou"])
def test_perfect_prediction_costs_nothing(loss_type):
    box = torch.tensor([[3.0, 1, 2, 5], [1, 1, 1, 1]])
    assert IOULoss(loss_type)(box, box.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_weights_multiply_then_sum():
    pred = torch.cat([NESTED[0], DISJOINT[0]])
    target = torch.cat([NESTED[1], DISJOINT[1]])
    weight = torch.tensor([2.0, 0.5])
    loss = IOULoss("linear_iou", smooth=0.0)(pred, target, weight)
    assert loss.item() == pytest.approx(2.0 * 0.75 + 0.5 * 1.0)
    unweighted = IOULoss("linear_iou", smooth=0.0)(pred, target)
    assert unweighted.item() == pytest.approx(1.75)


def test_gradient_flows_to_pred():
    pred = NESTED[0].clone().requires_grad_()
    IOULoss("giou")(pred, NESTED[1]).backward()
    assert torch.all(pred.grad < 0)  # growing the small box towards the target lowers the loss


def test_empty_input_sums_to_zero():
    assert IOULoss("giou")(torch.zeros(0, 4), torch.zeros(0, 4)).item() == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="iou, linear_iou, giou.*'ciou'"):
        IOULoss("ciou")
    with pytest.raises(ValueError, match=r"\[3, 5\]"):
        IOULoss()(torch.zeros(3, 5), torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"\[2, 4\].*\[3, 4\]"):
        IOULoss()(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"weight.*\[2\]"):
        IOULoss()(torch.zeros(3, 4), torch.zeros(3, 4), torch.ones(2))
