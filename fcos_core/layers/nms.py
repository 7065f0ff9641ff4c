"""Non-maximum suppression: our ``fcos::nms`` op, its reference and the per-class variants.

Dimension key: N boxes. Boxes are xyxy with width = x2 - x1 (no +1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fcos_core.layers import _ops


def check_nms_inputs(boxes: Tensor, scores: Tensor, iou_threshold: float) -> None:
    """Raises ValueError/TypeError naming the offending shape or dtype."""
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"nms: boxes must have shape [N, 4], got {list(boxes.shape)}")
    if scores.dim() != 1:
        raise ValueError(f"nms: scores must have shape [N], got {list(scores.shape)}")
    if boxes.shape[0] != scores.shape[0]:
        raise ValueError(
            f"nms: boxes {list(boxes.shape)} and scores {list(scores.shape)} differ in length N"
        )
    if not boxes.is_floating_point():
        raise TypeError(f"nms: boxes must be floating point, got dtype {boxes.dtype}")
    if not scores.is_floating_point():
        raise TypeError(f"nms: scores must be floating point, got dtype {scores.dtype}")
    if boxes.device != scores.device:
        raise ValueError(f"nms: boxes on {boxes.device} but scores on {scores.device}")


def box_iou_rows(box: Tensor, boxes: Tensor) -> Tensor:
    """IoU of one box (Tensor[4]) with each of ``boxes`` (Tensor[N, 4]); returns Tensor[N].

    Same operation order as the kernels so that float32 results agree bit for bit.
    """
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (N,)
    width = (torch.minimum(boxes[:, 2], box[2]) - torch.maximum(boxes[:, 0], box[0])).clamp(min=0)
    height = (torch.minimum(boxes[:, 3], box[3]) - torch.maximum(boxes[:, 1], box[1])).clamp(min=0)
    inter = width * height  # (N,)
    return inter / (area + areas - inter)


def nms_reference(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Pure-PyTorch greedy NMS (test oracle and fallback).

    Args:
        boxes: Tensor[N, 4] xyxy.
        scores: Tensor[N].
        iou_threshold: a box is dropped when its IoU with a kept, higher-scoring box is greater.

    Returns:
        LongTensor[K] indices of kept boxes, by decreasing score.
    """
    order = torch.sort(scores, descending=True, stable=True).indices  # (N,)
    compute_dtype = torch.float64 if boxes.dtype == torch.float64 else torch.float32
    sorted_boxes = boxes[order].to(compute_dtype)  # (N, 4)
    candidates = torch.arange(order.numel(), device=boxes.device)
    kept = []
    while candidates.numel() > 0:
        best, rest = candidates[0], candidates[1:]
        kept.append(best.reshape(1))
        overlap = box_iou_rows(sorted_boxes[best], sorted_boxes[rest])  # (len(rest),)
        # Compared in float64, like the kernels: a float32 IoU of 0.6f is above 0.6.
        candidates = rest[~(overlap.double() > iou_threshold)]
    if not kept:
        return order.new_empty((0,))
    return order[torch.cat(kept)]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS over all boxes.

    Args:
        boxes: Tensor[N, 4] xyxy, floating point.
        scores: Tensor[N] floating point.
        iou_threshold: suppress a box when IoU with a kept box is > this.

    Returns:
        LongTensor[K] indices of kept boxes, sorted by decreasing score.
    """
    check_nms_inputs(boxes, scores, iou_threshold)
    if _ops.use_kernel("fcos::nms", boxes, reference=fallback_name):
        return torch.ops.fcos.nms(boxes, scores, float(iou_threshold))
    return nms_fallback(boxes, scores, iou_threshold)


def fallback_name(device_type: str) -> str:
    """What :func:`nms_fallback` uses on ``device_type`` (for the fallback warning)."""
    if _ops.torchvision_has_nms(device_type):
        return "torchvision.ops.nms"
    return "the pure-PyTorch reference NMS"


def nms_fallback(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """NMS without our kernel: torchvision's compiled NMS where it has a kernel for the device
    (the same maths as the default convention: xyxy without +1, suppress when IoU > threshold;
    ties in score may come out in another order), else :func:`nms_reference`.
    Call it only for torchvision's box convention."""
    if _ops.torchvision_has_nms(boxes.device.type):
        import torchvision

        return torchvision.ops.nms(boxes, scores, float(iou_threshold))
    return nms_reference(boxes, scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS done independently per category ``idxs``; boxes of different categories never interact.

    Offsets every box by ``idx * (max coordinate + 1)`` so that categories cannot overlap, then
    runs one NMS.

    Args:
        boxes: Tensor[N, 4] xyxy.
        scores: Tensor[N].
        idxs: Tensor[N] integer category of each box.
        iou_threshold: as in ``nms``.

    Returns:
        LongTensor[K] kept indices, by decreasing score.
    """
    check_nms_inputs(boxes, scores, iou_threshold)
    if idxs.shape != scores.shape:
        raise ValueError(
            f"batched_nms: idxs must have shape [N={scores.shape[0]}], got {list(idxs.shape)}"
        )
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.long, device=boxes.device)
    span = boxes.max() - boxes.min() + 1
    offsets = idxs.to(boxes.dtype) * span  # (N,)
    shifted = boxes - boxes.min() + offsets[:, None]  # (N, 4)
    return nms(shifted, scores, iou_threshold)


def ml_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Multi-label (class-aware) NMS as FCOS uses it: ``batched_nms`` over ``labels``."""
    return batched_nms(boxes, scores, labels, iou_threshold)
