"""FCOS locations, matching and targets: the rules of the original, checked on hand-made boxes."""

from __future__ import annotations

import math

import pytest
import torch

from fcos_core.modeling.fcos.locations import compute_locations, compute_locations_per_level
from fcos_core.modeling.fcos.targets import (
    INF,
    compute_centerness_targets,
    match_locations_to_boxes,
    object_size_ranges,
    per_location_level_info,
    prepare_targets,
)

STRIDES = [8, 16, 32, 64, 128]
SIZES = [64, 128, 256, 512]
IMAGE = 256  # square test image side


def _level_locations(image: int = IMAGE) -> list[torch.Tensor]:
    feats = [torch.zeros(1, 1, math.ceil(image / s), math.ceil(image / s)) for s in STRIDES]
    return compute_locations(feats, STRIDES)


def _index_of(locations: list[torch.Tensor], level: int, x: float, y: float) -> int:
    """Flat index (over all levels) of the location (x, y) of `level`."""
    offset = sum(loc.shape[0] for loc in locations[:level])
    hit = ((locations[level] - torch.tensor([x, y])).abs().sum(dim=1) == 0).nonzero()
    assert hit.numel() == 1, f"no location ({x}, {y}) at level {level}"
    return offset + int(hit[0, 0])


def _targets(boxes, labels, radius: float = 0.0, norm: bool = False):
    locations = _level_locations()
    lab, reg = prepare_targets(
        locations,
        [torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)],
        [torch.tensor(labels, dtype=torch.long)],
        strides=STRIDES,
        size_ranges=object_size_ranges(SIZES, len(STRIDES)),
        center_sampling_radius=radius,
        norm_reg_targets=norm,
    )
    return locations, lab[0], reg[0]


def test_locations_sit_at_half_stride_offsets():
    loc = compute_locations_per_level(2, 3, 8)
    expected = [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    assert loc.tolist() == expected
    assert compute_locations_per_level(1, 1, 128).tolist() == [[64, 64]]


def test_locations_follow_feature_flatten_order():
    feats = [torch.zeros(2, 5, 3, 4), torch.zeros(2, 5, 2, 2)]
    locs = compute_locations(feats, [8, 16])
    assert [tuple(loc.shape) for loc in locs] == [(12, 2), (4, 2)]
    # Row i, column j of the map is flat index i * W + j.
    assert locs[0][1 * 4 + 2].tolist() == [2 * 8 + 4, 1 * 8 + 4]
    with pytest.raises(ValueError, match="FPN_STRIDES"):
        compute_locations(feats, [8])


def test_size_ranges_from_sizes_of_interest():
    assert object_size_ranges(SIZES, 5) == [[-1, 64], [64, 128], [128, 256], [256, 512], [512, INF]]
    with pytest.raises(ValueError, match="SIZES_OF_INTEREST"):
        object_size_ranges([64, 128], 5)


def test_level_info_broadcasts_per_location():
    strides, ranges = per_location_level_info([3, 2], [8, 16], [[-1, 64], [64, INF]])
    assert strides.tolist() == [8, 8, 8, 16, 16]
    assert ranges[:, 1].tolist() == [64, 64, 64, INF, INF]


def test_location_inside_box_in_range_gets_label_and_exact_ltrb():
    box = [10.0, 20.0, 90.0, 70.0]
    locations, labels, reg = _targets([box], [3])
    p3 = _index_of(locations, 0, 44, 44)
    assert labels[p3] == 3
    assert reg[p3].tolist() == [34, 24, 46, 26]
    # Same box seen from P4: max(l, t, r, b) = 50 is outside [64, 128], so background.
    p4 = _index_of(locations, 1, 40, 40)
    assert labels[p4] == 0
    # A P3 location outside the box is background.
    assert labels[_index_of(locations, 0, 100, 44)] == 0
    # With NORM_REG_TARGETS the targets are in units of the level's stride.
    _, _, reg_norm = _targets([box], [3], norm=True)
    assert reg_norm[p3].tolist() == [34 / 8, 24 / 8, 46 / 8, 26 / 8]


def test_location_on_the_box_border_is_not_inside():
    locations, labels, _ = _targets([[44.0, 30.0, 90.0, 70.0]], [1])
    assert labels[_index_of(locations, 0, 44, 44)] == 0  # l == 0
    assert labels[_index_of(locations, 0, 52, 44)] == 1


def test_size_range_bounds_are_inclusive():
    # At (72, 72): l = t = 64 (box from 8), r = b = 8; max = 64 is in P3 and in P4.
    box = [8.0, 8.0, 80.0, 80.0]
    locations, labels, reg = _targets([box], [2])
    assert labels[_index_of(locations, 0, 68, 68)] == 2  # max 60 at P3
    assert labels[_index_of(locations, 0, 76, 76)] == 0  # max 68: above P3's range
    assert labels[_index_of(locations, 1, 72, 72)] == 2  # max 64, lower bound of P4
    assert labels[_index_of(locations, 1, 24, 24)] == 0  # max 56: below P4's range
    assert reg[_index_of(locations, 1, 72, 72)].tolist() == [64, 64, 8, 8]


def test_box_centre_has_centerness_one():
    box = [24.0, 34.0, 64.0, 54.0]  # centred on the P3 location (44, 44)
    locations, labels, reg = _targets([box], [1])
    p3 = _index_of(locations, 0, 44, 44)
    assert labels[p3] == 1
    assert compute_centerness_targets(reg[p3][None]).tolist() == [1.0]
    off = compute_centerness_targets(torch.tensor([[10.0, 5.0, 30.0, 15.0]]))
    assert off.item() == pytest.approx(math.sqrt(1 / 3 * 1 / 3))
    assert compute_centerness_targets(torch.zeros(0, 4)).shape == (0,)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_overlapping_boxes_smaller_area_wins(order):
    boxes = [[0.0, 0.0, 60.0, 60.0], [20.0, 20.0, 50.0, 50.0]]  # areas 3600, 900
    labels = [1, 2]
    locations, lab, reg = _targets([boxes[i] for i in order], [labels[i] for i in order])
    both = _index_of(locations, 0, 36, 36)
    assert lab[both] == 2
    assert reg[both].tolist() == [16, 16, 14, 14]
    assert lab[_index_of(locations, 0, 12, 12)] == 1  # inside the big box only


def test_center_sampling_excludes_locations_outside_radius_times_stride():
    box = [0.0, 0.0, 200.0, 100.0]  # centre (100, 50); matched at P4 (stride 16, reach 24)
    locations, lab_plain, _ = _targets([box], [1])
    _, lab_cs, reg_cs = _targets([box], [1], radius=1.5)
    near = _index_of(locations, 1, 104, 56)
    far = _index_of(locations, 1, 72, 56)  # |x - 100| = 28 > 24, but inside the box, max = 128
    assert lab_plain[near] == 1 and lab_plain[far] == 1
    assert lab_cs[near] == 1 and lab_cs[far] == 0
    assert reg_cs[near].tolist() == [104, 56, 96, 44]


def test_center_sampling_positives_lie_within_radius_and_box():
    torch.manual_seed(0)
    xy = torch.rand(12, 2) * 200
    wh = torch.rand(12, 2) * 150 + 4
    boxes = torch.cat((xy, xy + wh), dim=1).clamp(max=IMAGE)
    locations = _level_locations()
    all_locs = torch.cat(locations)
    strides, ranges = per_location_level_info(
        [loc.shape[0] for loc in locations], STRIDES, object_size_ranges(SIZES, 5)
    )
    radius = 1.5
    matched = match_locations_to_boxes(all_locs, boxes, strides, ranges, radius)
    pos = matched >= 0
    assert pos.sum() > 10
    box = boxes[matched[pos]]
    centre = (box[:, :2] + box[:, 2:]) / 2
    offset = (all_locs[pos] - centre).abs()  # (P, 2)
    assert (offset < radius * strides[pos, None]).all()
    assert (all_locs[pos] > box[:, :2]).all() and (all_locs[pos] < box[:, 2:]).all()
    plain = match_locations_to_boxes(all_locs, boxes, strides, ranges, 0.0)
    assert pos.sum() < (plain >= 0).sum()


def test_images_without_boxes_are_all_background():
    locations = _level_locations(64)
    num = sum(loc.shape[0] for loc in locations)
    labels, reg = prepare_targets(
        locations,
        [torch.zeros(0, 4), torch.tensor([[8.0, 8.0, 40.0, 40.0]])],
        [torch.zeros(0, dtype=torch.long), torch.tensor([5])],
        strides=STRIDES,
        size_ranges=object_size_ranges(SIZES, 5),
        center_sampling_radius=1.5,
    )
    assert labels.shape == (2, num) and reg.shape == (2, num, 4)
    assert (labels[0] == 0).all() and (reg[0] == 0).all()
    assert (labels[1] == 5).any()
    assert set(labels[1].unique().tolist()) == {0, 5}
