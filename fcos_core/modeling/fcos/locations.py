"""Locations of the FCOS feature-map cells in input-image coordinates.

Dimension key: L levels, H_l x W_l the size of level l, R_l = H_l * W_l locations of level l.

Cell (i, j) of a level with stride s sits at (x, y) = (j * s + s // 2, i * s + s // 2), the
convention of the original FCOS (not (j + 0.5) * s for odd strides); with the offset "zero"
(MODEL.FCOS.LOCATION_OFFSET) it sits at (j * s, i * s), torchvision's anchor centres.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fcos_core.config.checks import check_choice

# MODEL.FCOS.LOCATION_OFFSET -> offset of cell (0, 0) from the image origin, given the stride s.
LOCATION_OFFSETS = {"half_stride": lambda s: s // 2, "zero": lambda s: 0}


def check_location_offset(offset: str) -> None:
    """Raise a ValueError naming MODEL.FCOS.LOCATION_OFFSET for an unknown offset."""
    check_choice("MODEL.FCOS.LOCATION_OFFSET", offset, LOCATION_OFFSETS)


def compute_locations_per_level(
    height: int,
    width: int,
    stride: int,
    device: torch.device | str = "cpu",
    offset: str = "half_stride",
) -> Tensor:
    """Locations of one feature level, row-major (x varies fastest).

    Args:
        height: H_l, rows of the feature map.
        width: W_l, columns of the feature map.
        stride: the level's stride s in input pixels.
        device: where to create the tensor.
        offset: a key of LOCATION_OFFSETS.

    Returns:
        Tensor[R_l, 2] float32 (x, y) of each cell, in the order of ``feature.flatten(2)``.
    """
    check_location_offset(offset)
    shifts_x = torch.arange(0, width * stride, step=stride, dtype=torch.float32, device=device)
    shifts_y = torch.arange(0, height * stride, step=stride, dtype=torch.float32, device=device)
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")  # (H_l, W_l) each
    locations = torch.stack((shift_x.reshape(-1), shift_y.reshape(-1)), dim=1)  # (R_l, 2)
    return locations + LOCATION_OFFSETS[offset](stride)


def compute_locations(
    features: Sequence[Tensor], strides: Sequence[int], offset: str = "half_stride"
) -> list[Tensor]:
    """Locations of every level.

    Args:
        features: L tensors Tensor[N, C, H_l, W_l] (only their sizes and device are used).
        strides: L strides, one per level.
        offset: a key of LOCATION_OFFSETS.

    Returns:
        L tensors Tensor[R_l, 2] (x, y).
    """
    if len(features) != len(strides):
        raise ValueError(
            f"compute_locations: got {len(features)} feature levels but {len(strides)} strides "
            "(MODEL.FCOS.FPN_STRIDES)"
        )
    return [
        compute_locations_per_level(f.shape[-2], f.shape[-1], s, f.device, offset)
        for f, s in zip(features, strides)
    ]
