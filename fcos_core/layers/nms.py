"""Non-maximum suppression: our ``fcos::nms`` op, its reference and the per-class variants.

Dimension key: N boxes. Boxes are xyxy; ``offset`` is added to every width and height (0 for
the continuous convention, 1 for the original's "plus_one", see
``fcos_core.structures.box_convention``). A box is suppressed when its IoU with a kept,
higher-scoring box is > ``iou_threshold`` (the CUDA ``nms`` / ``ml_nms`` kernels of the original
and torchvision), or >= it with ``suppress_equal`` (the original's CPU ``nms`` kernel). IoUs are
computed in the boxes' float type and compared with the threshold in float64.
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor

from fcos_core.layers import _ops


def check_nms_inputs(
    boxes: Tensor, scores: Tensor, iou_threshold: float, offset: float = 0.0
) -> None:
    """Raises ValueError/TypeError naming the offending shape, dtype or offset."""
    if not (math.isfinite(offset) and offset >= 0):
        raise ValueError(f"nms: offset must be a finite number >= 0, got {offset}")
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


def box_iou_rows(box: Tensor, boxes: Tensor, offset: float = 0.0) -> Tensor:
    """IoU of one box (Tensor[4]) with each of ``boxes`` (Tensor[N, 4]); returns Tensor[N].

    ``offset`` is added to widths and heights. Same operation order as the kernels so that
    float32 results agree bit for bit.
    """
    area = (box[2] - box[0] + offset) * (box[3] - box[1] + offset)
    areas = (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)  # (N,)
    right = torch.minimum(boxes[:, 2], box[2])
    bottom = torch.minimum(boxes[:, 3], box[3])
    width = (right - torch.maximum(boxes[:, 0], box[0]) + offset).clamp(min=0)  # (N,)
    height = (bottom - torch.maximum(boxes[:, 1], box[1]) + offset).clamp(min=0)
    inter = width * height  # (N,)
    return inter / (area + areas - inter)


def nms_reference(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    offset: float = 0.0,
    suppress_equal: bool = False,
) -> Tensor:
    """Pure-PyTorch greedy NMS (test oracle and fallback).

    Args:
        boxes: Tensor[N, 4] xyxy.
        scores: Tensor[N].
        iou_threshold: a box is dropped when its IoU with a kept, higher-scoring box is greater
            (or equal, with ``suppress_equal``).
        offset: added to widths and heights (1.0: the original's +1 convention).

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
        overlap = box_iou_rows(sorted_boxes[best], sorted_boxes[rest], offset).double()
        # Compared in float64, like the kernels: a float32 IoU of 0.6f is above 0.6.
        drop = overlap >= iou_threshold if suppress_equal else overlap > iou_threshold
        candidates = rest[~drop]
    if not kept:
        return order.new_empty((0,))
    return order[torch.cat(kept)]


def _export_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: float) -> Tensor:
    """NMS as an ONNX NonMaxSuppression node (torchvision's exporter), for ``torch.onnx.export``.

    IoU with +``offset`` widths equals the plain IoU of the boxes with x2, y2 moved by ``offset``.
    """
    if offset:
        boxes = torch.cat((boxes[:, :2], boxes[:, 2:] + offset), dim=1)  # (N, 4)
    return torchvision.ops.nms(boxes, scores, iou_threshold)


def nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    offset: float = 0.0,
    suppress_equal: bool = False,
) -> Tensor:
    """Greedy NMS over all boxes (``fcos::nms``; the reference without the extension).

    Args:
        boxes: Tensor[N, 4] xyxy, floating point.
        scores: Tensor[N] floating point.
        iou_threshold: suppress a box when IoU with a kept box is > this (>= with
            ``suppress_equal``).
        offset: added to widths and heights (0.0 continuous, 1.0 the original's +1).
        suppress_equal: the original CPU kernel's rule (>=) instead of the CUDA one (>).

    Returns:
        LongTensor[K] indices of kept boxes, sorted by decreasing score.
    """
    check_nms_inputs(boxes, scores, iou_threshold, offset)
    if torch.onnx.is_in_onnx_export():
        if suppress_equal:
            raise ValueError("nms: suppress_equal has no ONNX NonMaxSuppression equivalent")
        return _export_nms(boxes, scores, iou_threshold, offset)
    if _ops.HAS_EXT:
        return torch.ops.fcos.nms(
            boxes, scores, float(iou_threshold), float(offset), bool(suppress_equal)
        )
    return nms_reference(boxes, scores, iou_threshold, offset, suppress_equal)


def batched_nms(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor,
    iou_threshold: float,
    offset: float = 0.0,
    suppress_equal: bool = False,
) -> Tensor:
    """NMS done independently per category ``idxs``; boxes of different categories never interact.

    Moves the boxes of category k by ``k * (hi - lo + 1 + offset)``, where [lo, hi] spans every
    coordinate and 0, so that categories cannot overlap, then runs one ``nms``. For boxes with
    coordinates >= 0 (clipped boxes) and offset 0 this is torchvision's ``batched_nms``
    coordinate trick, value for value. No data-dependent branch: the graph exports to ONNX.

    Args:
        boxes: Tensor[N, 4] xyxy.
        scores: Tensor[N].
        idxs: Tensor[N] integer category of each box.
        iou_threshold, offset, suppress_equal: as in ``nms``.

    Returns:
        LongTensor[K] kept indices, by decreasing score.
    """
    check_nms_inputs(boxes, scores, iou_threshold, offset)
    if idxs.shape != scores.shape:
        raise ValueError(
            f"batched_nms: idxs must have shape [N={scores.shape[0]}], got {list(idxs.shape)}"
        )
    coords = torch.cat((boxes.reshape(-1), boxes.new_zeros(1)))  # every coordinate and 0
    span = coords.max() - coords.min() + 1 + offset
    shifted = boxes + (idxs.to(boxes.dtype) * span)[:, None]  # (N, 4)
    return nms(shifted, scores, iou_threshold, offset, suppress_equal)


def ml_nms(
    boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float, offset: float = 0.0
) -> Tensor:
    """Multi-label (class-aware) NMS as FCOS uses it: ``batched_nms`` over ``labels``.

    With ``offset`` 1.0 and a float32 threshold this is the original's CUDA ``ml_nms`` (IoU with
    +1 widths, suppression at IoU > threshold), except that the kept indices come by decreasing
    score (the original returns them in index order).
    """
    return batched_nms(boxes, scores, labels, iou_threshold, offset)
