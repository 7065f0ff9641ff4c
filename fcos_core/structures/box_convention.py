"""The pixel convention of box arithmetic (MODEL.BOX_CONVENTION), written once.

Two conventions are in use for xyxy boxes in pixel coordinates:

- ``"plus_one"``: maskrcnn-benchmark and the original FCOS. A box covers the pixels x1..x2
  inclusive, so its width is ``x2 - x1 + 1``; a COCO ``[x, y, w, h]`` box ends at
  ``x2 = x + w - 1``; boxes are clipped to ``width - 1`` / ``height - 1``; NMS and IoU add 1 to
  widths and heights. The official model zoo was trained and evaluated this way.
- ``"continuous"``: torchvision and detectron2. A box from x1 to x2 has width ``x2 - x1``;
  boxes are clipped to ``width`` / ``height``.

Everything that depends on the convention asks this module for its one number, the offset
added to every width and height (1.0 or 0.0), or for the NMS rule of the convention.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fcos_core.config.checks import check_choice

PLUS_ONE = "plus_one"
CONTINUOUS = "continuous"
# Allowed values of MODEL.BOX_CONVENTION.
BOX_CONVENTIONS = (PLUS_ONE, CONTINUOUS)
# Convention of a BoxList built without naming one (e.g. by user code).
DEFAULT_BOX_CONVENTION = CONTINUOUS
_OFFSETS = {PLUS_ONE: 1.0, CONTINUOUS: 0.0}


def check_box_convention(convention: str, key: str = "MODEL.BOX_CONVENTION") -> str:
    """Return ``convention`` if allowed; ValueError naming ``key``, the value and the choices."""
    return check_choice(key, convention, BOX_CONVENTIONS)


def box_offset(convention: str) -> float:
    """What the convention adds to ``x2 - x1`` to get a width: 1.0 (plus_one) or 0.0."""
    return _OFFSETS[check_box_convention(convention)]


def from_pixel_edges(boxes: Tensor, convention: str) -> Tensor:
    """xyxy boxes whose x2, y2 are pixel edges (a COCO box's x + w, a VOC box's xmax) in
    ``convention``: unchanged for "continuous", x2 - 1 and y2 - 1 (the last pixel inside) for
    "plus_one", so that COCO [x, y, w, h] -> [x, y, x + w - 1, y + h - 1] as the original."""
    offset = box_offset(convention)
    if not offset:
        return boxes
    return torch.cat((boxes[:, :2], boxes[:, 2:] - offset), dim=1)


def nms_rule(convention: str, iou_threshold: float) -> tuple[float, float]:
    """``(iou_threshold, offset)`` that make ``fcos::nms`` the NMS of ``convention``.

    ``fcos::nms`` suppresses when ``double(IoU) > iou_threshold``. The original FCOS's CUDA
    ``ml_nms`` (the op behind the published results) took its threshold as a C ``float`` and
    compared in float, so for ``plus_one`` the threshold is rounded to float32 first: an IoU of
    exactly 0.6 (as float32) is then kept at NMS_TH 0.6, as there. ``continuous`` keeps the
    double threshold, as torchvision's ``nms``.
    """
    offset = box_offset(convention)
    if convention == PLUS_ONE:
        return float(np.float32(iou_threshold)), offset
    return float(iou_threshold), offset


__all__ = [
    "BOX_CONVENTIONS",
    "CONTINUOUS",
    "DEFAULT_BOX_CONVENTION",
    "PLUS_ONE",
    "box_offset",
    "check_box_convention",
    "from_pixel_edges",
    "nms_rule",
]
