"""Layers: our compiled ops (NMS, sigmoid focal loss) with fallbacks, and small modules."""

from __future__ import annotations

from fcos_core.layers._ops import HAS_EXT
from fcos_core.layers.iou_loss import IOULoss
from fcos_core.layers.misc import FrozenBatchNorm2d, Scale
from fcos_core.layers.nms import batched_nms, ml_nms, nms
from fcos_core.layers.sigmoid_focal_loss import SigmoidFocalLoss, sigmoid_focal_loss

__all__ = [
    "HAS_EXT",
    "FrozenBatchNorm2d",
    "IOULoss",
    "Scale",
    "SigmoidFocalLoss",
    "batched_nms",
    "ml_nms",
    "nms",
    "sigmoid_focal_loss",
]
