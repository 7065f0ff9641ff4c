"""IoU-based box regression losses on (left, top, right, bottom) distance targets.

Dimension key: R positive points.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fcos_core.config.checks import check_choice

# Added to intersection and union before dividing, as in FCOS: keeps -log(IoU) finite for
# degenerate boxes and is negligible for boxes of a few pixels or more.
DEFAULT_IOU_SMOOTH = 1.0
# Keeps the GIoU enclosing-area division finite.
ENCLOSE_EPS = 1e-7
LOSS_TYPES = ("iou", "linear_iou", "giou")


def _check_ltrb(pred: Tensor, target: Tensor, weight: Tensor | None) -> None:
    if pred.dim() != 2 or pred.shape[1] != 4:
        raise ValueError(f"IOULoss: pred must have shape [R, 4], got {list(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(
            f"IOULoss: target shape {list(target.shape)} != pred shape {list(pred.shape)}"
        )
    if weight is not None and weight.shape != pred.shape[:1]:
        raise ValueError(
            f"IOULoss: weight must have shape [R={pred.shape[0]}], got {list(weight.shape)}"
        )


def iou_and_giou(pred: Tensor, target: Tensor, smooth: float) -> tuple[Tensor, Tensor]:
    """IoU and GIoU of boxes given as distances from a shared point.

    Args:
        pred: Tensor[R, 4] predicted (l, t, r, b) distances, >= 0.
        target: Tensor[R, 4] target (l, t, r, b) distances.
        smooth: added to intersection and union before dividing.

    Returns:
        (iou, giou), each Tensor[R] float32.
    """
    pred, target = pred.float(), target.float()
    pred_area = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])  # (R,)
    target_area = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])  # (R,)
    lo = torch.minimum(pred, target)  # (R, 4)
    hi = torch.maximum(pred, target)  # (R, 4)
    inter = (lo[:, 0] + lo[:, 2]) * (lo[:, 1] + lo[:, 3])  # (R,)
    enclose = (hi[:, 0] + hi[:, 2]) * (hi[:, 1] + hi[:, 3]) + ENCLOSE_EPS  # (R,)
    union = pred_area + target_area - inter
    iou = (inter + smooth) / (union + smooth)
    giou = iou - (enclose - union) / enclose
    return iou, giou


class IOULoss(nn.Module):
    """Sum of IoU losses, FCOS style.

    ``"iou"``: -log(IoU); ``"linear_iou"``: 1 - IoU; ``"giou"``: 1 - GIoU.

    Args:
        loss_type: one of ``LOSS_TYPES``.
        smooth: added to intersection and union (FCOS uses 1.0; 0.0 gives the exact IoU).
    """

    def __init__(self, loss_type: str = "iou", *, smooth: float = DEFAULT_IOU_SMOOTH) -> None:
        super().__init__()
        self.loss_type = check_choice("IOULoss: loss_type", loss_type, LOSS_TYPES)
        self.smooth = smooth

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        """Computes the summed loss.

        Args:
            pred: Tensor[R, 4] predicted (l, t, r, b).
            target: Tensor[R, 4] target (l, t, r, b).
            weight: optional Tensor[R] per-box weight (FCOS passes centerness targets).

        Returns:
            Scalar float32 tensor: sum of ``loss * weight`` (plain sum when ``weight`` is None).
        """
        _check_ltrb(pred, target, weight)
        iou, giou = iou_and_giou(pred, target, self.smooth)
        if self.loss_type == "iou":
            losses = -torch.log(iou)
        elif self.loss_type == "linear_iou":
            losses = 1.0 - iou
        else:
            losses = 1.0 - giou
        if weight is None:
            return losses.sum()
        return (losses * weight.float()).sum()

    def extra_repr(self) -> str:
        return f"loss_type={self.loss_type!r}, smooth={self.smooth}"
