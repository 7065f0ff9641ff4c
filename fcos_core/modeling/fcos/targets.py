"""FCOS training targets: which ground-truth box each location regresses, and what it regresses.

Dimension key: N images, L levels, R locations of all levels of one image (level-major, the
order of ``compute_locations``), M ground-truth boxes of one image.

Rules of the original FCOS. The box convention (MODEL.BOX_CONVENTION) enters in one place only,
as in the original: the box areas that break ties between candidate boxes are the targets'
``BoxList.area()`` ((x2 - x1 + 1) * (y2 - y1 + 1) with "plus_one"). The distances (l, t, r, b),
the inside test and the centre region use the box coordinates as they are, with no +1, in the
original as here:
- a location is a candidate for a box when it lies strictly inside it (all of l, t, r, b > 0),
  or, with centre sampling (radius > 0), strictly inside the box's centre region: the square of
  half-size radius * stride around the box centre, clipped to the box;
- and when max(l, t, r, b) lies in the level's object-size range (both bounds inclusive);
- among its candidate boxes a location takes the one of minimal area (first one on ties);
- a location with no candidate is background (label 0). Images with no boxes are all background.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# Upper bound of the last level's object-size range (the original's INF).
INF = 100000000.0
# Boundaries of the original P3-P7 ranges, and the ones the error message suggests with the
# stride-4 level: P2 [-1, 32], P3 [32, 64], then as the original.
DEFAULT_SIZES_OF_INTEREST = (64, 128, 256, 512)
P2_SIZES_OF_INTEREST = (32, 64, 128, 256, 512)


def object_size_ranges(sizes_of_interest: Sequence[float], num_levels: int) -> list[list[float]]:
    """Per-level object-size ranges from their boundaries.

    Args:
        sizes_of_interest: L - 1 increasing boundaries, e.g. (64, 128, 256, 512) for P3-P7,
            (32, 64, 128, 256, 512) for P2-P7.
        num_levels: L.

    Returns:
        L pairs [lo, hi]: [-1, s_0], [s_0, s_1], ..., [s_{L-2}, INF].
    """
    sizes = [float(s) for s in sizes_of_interest]
    if len(sizes) != num_levels - 1 or sorted(sizes) != sizes:
        raise ValueError(
            "MODEL.FCOS.SIZES_OF_INTEREST must hold len(FPN_STRIDES) - 1 = "
            f"{num_levels - 1} increasing values, got {list(sizes_of_interest)} (P3-P7: "
            f"{list(DEFAULT_SIZES_OF_INTEREST)}; with the stride-4 level P2: "
            f"{list(P2_SIZES_OF_INTEREST)})"
        )
    bounds = [-1.0, *sizes, INF]
    return [[lo, hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def per_location_level_info(
    num_points_per_level: Sequence[int],
    strides: Sequence[int],
    size_ranges: Sequence[Sequence[float]],
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Broadcast each level's stride and size range to its locations.

    Built by fills on ``device`` from host numbers: no host-to-device copy, so no GPU sync.

    Returns:
        strides Tensor[R] float32 and size ranges Tensor[R, 2] float32.
    """

    def fill(n: int, value: float) -> Tensor:
        return torch.full((int(n),), float(value), device=device)

    loc_strides = torch.cat(
        [fill(n, s) for n, s in zip(num_points_per_level, strides, strict=True)]
    )
    loc_ranges = torch.cat([
        torch.stack((fill(n, low), fill(n, high)), dim=1)
        for n, (low, high) in zip(num_points_per_level, size_ranges, strict=True)
    ])  # fmt: skip
    return loc_strides, loc_ranges


def ltrb_distances(locations: Tensor, boxes: Tensor) -> Tensor:
    """Distances from each location to the four sides of each box.

    Args:
        locations: Tensor[R, 2] (x, y).
        boxes: Tensor[M, 4] xyxy.

    Returns:
        Tensor[R, M, 4] (l, t, r, b) = (x - x1, y - y1, x2 - x, y2 - y).
    """
    xs, ys = locations[:, 0, None], locations[:, 1, None]  # (R, 1) each
    left = xs - boxes[None, :, 0]  # (R, M)
    top = ys - boxes[None, :, 1]
    right = boxes[None, :, 2] - xs
    bottom = boxes[None, :, 3] - ys
    return torch.stack((left, top, right, bottom), dim=2)  # (R, M, 4)


def center_sampling_mask(
    locations: Tensor, boxes: Tensor, strides: Tensor, radius: float
) -> Tensor:
    """Locations strictly inside each box's centre region.

    The region of a box for a location of stride s is the square centred on the box centre with
    half-size radius * s, intersected with the box.

    Args:
        locations: Tensor[R, 2] (x, y).
        boxes: Tensor[M, 4] xyxy.
        strides: Tensor[R] stride of each location's level.
        radius: CENTER_SAMPLING_RADIUS (> 0).

    Returns:
        Tensor[R, M] bool.
    """
    center_x = (boxes[:, 0] + boxes[:, 2]) / 2  # (M,)
    center_y = (boxes[:, 1] + boxes[:, 3]) / 2
    reach = strides[:, None] * radius  # (R, 1)
    region = torch.stack(
        (
            torch.maximum(center_x[None] - reach, boxes[None, :, 0]),
            torch.maximum(center_y[None] - reach, boxes[None, :, 1]),
            torch.minimum(center_x[None] + reach, boxes[None, :, 2]),
            torch.minimum(center_y[None] + reach, boxes[None, :, 3]),
        ),
        dim=2,
    )  # (R, M, 4) xyxy
    xs, ys = locations[:, 0, None], locations[:, 1, None]  # (R, 1)
    dists = torch.stack(
        (xs - region[..., 0], ys - region[..., 1], region[..., 2] - xs, region[..., 3] - ys), dim=2
    )  # (R, M, 4)
    return dists.min(dim=2).values > 0


def match_locations_to_boxes(
    locations: Tensor,
    boxes: Tensor,
    strides: Tensor,
    size_ranges: Tensor,
    center_sampling_radius: float = 0.0,
    areas: Tensor | None = None,
) -> Tensor:
    """Assign each location to at most one box (minimal area among its candidates).

    Args:
        locations: Tensor[R, 2] (x, y).
        boxes: Tensor[M, 4] xyxy, M may be 0.
        strides: Tensor[R] stride of each location's level.
        size_ranges: Tensor[R, 2] inclusive [lo, hi] range of max(l, t, r, b) for each location.
        center_sampling_radius: > 0 enables centre sampling.
        areas: Tensor[M] box areas in the box convention (``BoxList.area()``); default
            (x2 - x1) * (y2 - y1).

    Returns:
        Tensor[R] int64: index of the matched box, -1 for background.
    """
    num_locations, num_boxes = locations.shape[0], boxes.shape[0]
    if num_boxes == 0:
        return torch.full((num_locations,), -1, dtype=torch.long, device=locations.device)
    dists = ltrb_distances(locations, boxes)  # (R, M, 4)
    if center_sampling_radius > 0:
        inside = center_sampling_mask(locations, boxes, strides, center_sampling_radius)
    else:
        inside = dists.min(dim=2).values > 0  # (R, M)
    max_dist = dists.max(dim=2).values  # (R, M)
    in_range = (max_dist >= size_ranges[:, 0:1]) & (max_dist <= size_ranges[:, 1:2])
    candidate = inside & in_range  # (R, M)
    if areas is None:
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (M,)
    area_per_pair = areas[None].expand(num_locations, num_boxes)  # (R, M)
    area_per_pair = area_per_pair.masked_fill(~candidate, float("inf"))
    matched = area_per_pair.min(dim=1).indices  # (R,), first minimum on ties
    return torch.where(candidate.any(dim=1), matched, torch.full_like(matched, -1))


def compute_centerness_targets(reg_targets: Tensor) -> Tensor:
    """Centerness sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)).

    Args:
        reg_targets: Tensor[P, 4] (l, t, r, b) of positive locations (all > 0).

    Returns:
        Tensor[P] in (0, 1].
    """
    left_right = reg_targets[:, 0::2]  # (P, 2): l, r (a slice: no index tensor to copy)
    top_bottom = reg_targets[:, 1::2]  # (P, 2): t, b
    ratio_lr = left_right.min(dim=1).values / left_right.max(dim=1).values
    ratio_tb = top_bottom.min(dim=1).values / top_bottom.max(dim=1).values
    return torch.sqrt(ratio_lr * ratio_tb)


def targets_for_image(
    locations: Tensor,
    boxes: Tensor,
    labels: Tensor,
    strides: Tensor,
    size_ranges: Tensor,
    center_sampling_radius: float = 0.0,
    areas: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Class labels and (l, t, r, b) targets of every location of one image.

    Args:
        locations: Tensor[R, 2]. boxes: Tensor[M, 4] xyxy. labels: Tensor[M] int64 in 1..C.
        strides, size_ranges, center_sampling_radius, areas: as in
            ``match_locations_to_boxes``.

    Returns:
        labels Tensor[R] int64 (0 = background) and reg targets Tensor[R, 4] float32 in pixels
        (zeros at background locations).
    """
    matched = match_locations_to_boxes(
        locations, boxes, strides, size_ranges, center_sampling_radius, areas
    )  # (R,)
    if boxes.shape[0] == 0:
        return matched.new_zeros(matched.shape), locations.new_zeros((locations.shape[0], 4))
    is_pos = matched >= 0
    safe = matched.clamp(min=0)
    box = boxes[safe]  # (R, 4)
    reg = torch.cat((locations - box[:, :2], box[:, 2:] - locations), dim=1)  # (R, 4) l, t, r, b
    reg = torch.where(is_pos[:, None], reg, torch.zeros_like(reg))
    cls = torch.where(is_pos, labels.to(torch.long)[safe], torch.zeros_like(safe))
    return cls, reg


def prepare_targets(
    locations: Sequence[Tensor],
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    *,
    strides: Sequence[int],
    size_ranges: Sequence[Sequence[float]],
    center_sampling_radius: float = 0.0,
    norm_reg_targets: bool = False,
    gt_areas: Sequence[Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Targets of a batch.

    Args:
        locations: L tensors Tensor[R_l, 2].
        gt_boxes: N tensors Tensor[M_i, 4] xyxy in the network input frame.
        gt_labels: N tensors Tensor[M_i] int64 in 1..C.
        strides: L strides. size_ranges: L inclusive [lo, hi] pairs.
        center_sampling_radius: > 0 enables centre sampling.
        norm_reg_targets: divide the regression targets by their level's stride.
        gt_areas: N tensors Tensor[M_i], the boxes' areas in their box convention (default:
            (x2 - x1) * (y2 - y1)).

    Returns:
        labels Tensor[N, R] int64 and reg targets Tensor[N, R, 4].
    """
    all_locations = torch.cat(list(locations), dim=0)  # (R, 2)
    loc_strides, loc_ranges = per_location_level_info(
        [loc.shape[0] for loc in locations], strides, size_ranges, all_locations.device
    )
    labels, regs = [], []
    areas = gt_areas if gt_areas is not None else [None] * len(gt_boxes)
    for boxes, cls, area in zip(gt_boxes, gt_labels, areas):
        lab, reg = targets_for_image(
            all_locations, boxes, cls, loc_strides, loc_ranges, center_sampling_radius, area
        )
        labels.append(lab)
        regs.append(reg / loc_strides[:, None] if norm_reg_targets else reg)
    return torch.stack(labels), torch.stack(regs)  # (N, R), (N, R, 4)
