"""FCOS targets in both box conventions, on hand-made boxes.

The original (tianzhi0549/FCOS loss.py) uses the +1 convention only through ``BoxList.area()``,
the tie-break between boxes that contain a location; distances, the inside test and the centre
region use the coordinates as they are.
"""

from __future__ import annotations

import pytest
import torch

from fcos_core.modeling.fcos.loss import FCOSLossComputation
from fcos_core.structures import BoxList

# Same continuous area (40 * 3 = 12 * 10 = 120); with +1: 41 * 4 = 164 and 13 * 11 = 143.
FLAT, TALL = [0.0, 0.0, 40.0, 3.0], [0.0, 0.0, 12.0, 10.0]
LOCATION = [5.0, 1.5]  # strictly inside both


def _loss(radius: float = 0.0) -> FCOSLossComputation:
    return FCOSLossComputation(
        fpn_strides=[8, 16],
        sizes_of_interest=[1000],
        center_sampling_radius=radius,
        iou_loss_type="iou",
        norm_reg_targets=False,
        focal_gamma=2.0,
        focal_alpha=0.25,
    )


def _targets(convention: str, boxes=(FLAT, TALL), size=(64, 64)) -> BoxList:
    target = BoxList(torch.tensor(boxes), size, convention=convention)
    target.add_field("labels", torch.tensor([1, 2]))
    return target


def _locations(points):
    return [torch.tensor(points), torch.zeros(0, 2)]


@pytest.mark.parametrize(
    ("convention", "label", "box"), [("continuous", 1, FLAT), ("plus_one", 2, TALL)]
)
def test_minimal_area_tie_break_follows_the_convention(convention, label, box):
    labels, reg = _loss().prepare_targets(_locations([LOCATION]), [_targets(convention)])
    assert labels.tolist() == [[label]]
    x, y = LOCATION
    # (l, t, r, b) from the box coordinates as they are, no +1, in both conventions.
    assert reg[0, 0].tolist() == [x - box[0], y - box[1], box[2] - x, box[3] - y]


@pytest.mark.parametrize("convention", ["continuous", "plus_one"])
def test_inside_test_and_centre_region_have_no_offset(convention):
    """A location on a box's right edge (r = 0) is outside in both conventions; the centre
    region of [8, 8, 40, 40] at stride 8, radius 1 is [16, 16, 32, 32] in both."""
    box = [[8.0, 8.0, 40.0, 40.0], [100.0, 100.0, 110.0, 110.0]]
    on_edge = [[40.0, 20.0], [20.0, 20.0]]
    labels, _ = _loss().prepare_targets(
        _locations(on_edge), [_targets(convention, box, (128, 128))]
    )
    assert labels.tolist() == [[0, 1]]
    points = [[16.0, 24.0], [17.0, 24.0], [31.0, 31.0], [32.0, 24.0]]
    labels, _ = _loss(1.0).prepare_targets(
        _locations(points), [_targets(convention, box, (128, 128))]
    )
    assert labels.tolist() == [[0, 1, 1, 0]]
