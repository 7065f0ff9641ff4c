"""An independent reference of the original FCOS (tianzhi0549/FCOS) inference and targets.

Written from the original's formulas, deliberately in another shape than ``fcos_core``: NumPy
arrays and plain loops, one image at a time, no torch. It is only a test oracle.

Dimension key: C foreground classes, H x W size of a level, R locations, M ground-truth boxes,
K candidates.

Facts of the original that this reproduces (``fcos_core/modeling/rpn/fcos/{fcos,inference,
loss}.py``, ``structures/bounding_box.py``, ``structures/boxlist_ops.py``, ``csrc/cuda/ml_nms.cu``):

- Locations: cell (i, j) of a level of stride s sits at (j * s + s // 2, i * s + s // 2).
- Head tail in eval: t = Scale * bbox_pred; NORM_REG_TARGETS: max(t, 0) * stride, else exp(t).
- Per level and image: candidates are the (location, class) pairs whose class probability
  sigmoid(logit) is > INFERENCE_TH (float32 comparison); if there are more than PRE_NMS_TOP_N,
  the PRE_NMS_TOP_N largest cls * centerness products are kept. Boxes decode as
  (x - l, y - t, x + r, y + b), the score is sqrt(cls * centerness), the label is class + 1.
- "+1" box convention (maskrcnn-benchmark): clip_to_image clamps x to [0, w - 1] and y to
  [0, h - 1]; widths are x2 - x1 + 1 (remove_small_boxes keeps widths and heights >= min_size,
  0 in FCOS). The "continuous" convention (torchvision) clamps to [0, w] and has widths x2 - x1.
- ml_nms (the CUDA op the published results came from): boxes sorted by decreasing score; a kept
  box suppresses a later box of the SAME label when their IoU is > NMS_TH, the IoU computed in
  float32 with areas (x2 - x1 + 1) * (y2 - y1 + 1), compared with a float32 threshold.
- Per image cap: with n > DETECTIONS_PER_IMG = k > 0 detections, the threshold is the
  (n - k + 1)-th smallest score, and every detection with a score >= it is kept (ties too).
- Targets: a location is a candidate for a box when it is strictly inside it (min(l, t, r, b)
  > 0), or, with CENTER_SAMPLING_RADIUS > 0, strictly inside the box's centre square of
  half-size radius * stride clipped to the box; and when max(l, t, r, b) is within the level's
  range [lo, hi] (both inclusive: [-1, 64], [64, 128], [128, 256], [256, 512], [512, INF]).
  Among candidates the box of minimal area (area with the box convention) wins, the first one on
  ties; no candidate: label 0. NORM_REG_TARGETS divides the (l, t, r, b) targets by the stride.
  Centerness target: sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

F32 = np.float32
INF = 100000000.0
SIZE_RANGES = ((-1.0, 64.0), (64.0, 128.0), (128.0, 256.0), (256.0, 512.0), (512.0, INF))
CONVENTION_OFFSET = {"plus_one": 1.0, "continuous": 0.0}


class AmbiguousInput(AssertionError):
    """The original's result depends on an unspecified order (exact score ties)."""


@dataclass(frozen=True)
class Params:
    """Post-processing settings (MODEL.FCOS.* and TEST.DETECTIONS_PER_IMG)."""

    pre_nms_thresh: float = 0.05
    pre_nms_top_n: int = 1000
    nms_thresh: float = 0.6
    detections_per_img: int = 100
    min_size: float = 0.0
    convention: str = "plus_one"


def locations(height: int, width: int, stride: int) -> np.ndarray:
    """(R, 2) float32 (x, y) of the cells of one level, row by row."""
    points = []
    for i in range(height):
        for j in range(width):
            points.append((j * stride + stride // 2, i * stride + stride // 2))
    return np.asarray(points, dtype=F32).reshape(-1, 2)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=F32)
    with np.errstate(over="ignore"):
        return (F32(1.0) / (F32(1.0) + np.exp(-x))).astype(F32)


def head_tail(raw: np.ndarray, scale: float, stride: int, norm_reg_targets: bool) -> np.ndarray:
    """Eval-time distances in pixels from the raw bbox_pred conv output of one level."""
    t = np.asarray(raw, dtype=F32) * F32(scale)
    if norm_reg_targets:
        return (np.maximum(t, F32(0.0)) * F32(stride)).astype(F32)
    return np.exp(t).astype(F32)


def _level_candidates(logits, reg, ctr, stride, image_hw, p: Params):
    """Boxes, scores and labels of one level of one image.

    logits (C, H, W), reg (4, H, W) pixels, ctr (1, H, W) logits: numpy arrays.
    """
    num_classes, height, width = logits.shape
    points = locations(height, width, stride)
    prob = _sigmoid(logits).reshape(num_classes, -1).T  # (R, C)
    centre = _sigmoid(ctr).reshape(-1)  # (R,)
    dist = np.asarray(reg, dtype=F32).reshape(4, -1).T  # (R, 4)
    picked = []  # (product, location, class) in the original's nonzero() order
    for r in range(prob.shape[0]):
        for c in np.flatnonzero(prob[r] > F32(p.pre_nms_thresh)):
            picked.append((F32(prob[r, c] * centre[r]), r, int(c)))
    if len(picked) > p.pre_nms_top_n:
        ranked = sorted(picked, key=lambda e: -float(e[0]))
        if ranked[p.pre_nms_top_n - 1][0] == ranked[p.pre_nms_top_n][0]:
            raise AmbiguousInput("exact score tie at the PRE_NMS_TOP_N boundary")
        picked = ranked[: p.pre_nms_top_n]
    off = F32(CONVENTION_OFFSET[p.convention])
    img_h, img_w = image_hw
    out = []
    for product, r, c in picked:
        x, y = points[r]
        left, top, right, bottom = dist[r]
        box = [x - left, y - top, x + right, y + bottom]
        box = [
            min(max(v, F32(0.0)), F32(img_w) - off if k % 2 == 0 else F32(img_h) - off)
            for k, v in enumerate(box)
        ]
        if box[2] - box[0] + off >= p.min_size and box[3] - box[1] + off >= p.min_size:
            out.append((box, F32(np.sqrt(product)), c + 1))
    return out


def ml_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, p: Params) -> list[int]:
    """Indices kept by the original's CUDA ml_nms (any order)."""
    off = F32(CONVENTION_OFFSET[p.convention])
    boxes = np.asarray(boxes, dtype=F32).reshape(-1, 4)
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    areas = (boxes[:, 2] - boxes[:, 0] + off) * (boxes[:, 3] - boxes[:, 1] + off)
    thresh = F32(p.nms_thresh)
    removed = np.zeros(len(scores), dtype=bool)
    kept = []
    for n, i in enumerate(order):
        if removed[i]:
            continue
        kept.append(i)
        later = np.asarray(order[n + 1 :], dtype=np.int64)
        later = later[(labels[later] == labels[i]) & ~removed[later]]
        if later.size == 0:
            continue
        w = np.maximum(
            np.minimum(boxes[later, 2], boxes[i, 2])
            - np.maximum(boxes[later, 0], boxes[i, 0])
            + off,
            F32(0.0),
        )
        h = np.maximum(
            np.minimum(boxes[later, 3], boxes[i, 3])
            - np.maximum(boxes[later, 1], boxes[i, 1])
            + off,
            F32(0.0),
        )
        inter = (w * h).astype(F32)
        with np.errstate(invalid="ignore"):  # 0 / 0 for empty boxes: NaN, never above
            iou = (inter / (areas[i] + areas[later] - inter)).astype(F32)
        over = iou > thresh
        ties = later[over & (scores[later] == scores[i])]
        if ties.size:
            raise AmbiguousInput(f"boxes {i} and {ties.tolist()} tie in score and overlap")
        removed[later[over]] = True
    return kept


def cap(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the detections the per-image cap keeps (kthvalue rule)."""
    n = len(scores)
    if not 0 < k < n:
        return np.ones(n, dtype=bool)
    threshold = np.sort(np.asarray(scores, dtype=F32))[n - k]
    return np.asarray(scores, dtype=F32) >= threshold


def postprocess_image(levels, strides, image_hw, p: Params):
    """Detections of one image.

    Args:
        levels: per level a triple (logits (C, H, W), reg (4, H, W) pixels, ctr (1, H, W)).
        strides: per level stride.
        image_hw: (height, width) of the un-padded image.

    Returns:
        boxes (K, 4) float32 xyxy, scores (K,) float32, labels (K,) int64.
    """
    dets = []
    for (logits, reg, ctr), stride in zip(levels, strides):
        dets += _level_candidates(logits, reg, ctr, stride, image_hw, p)
    boxes = np.asarray([d[0] for d in dets], dtype=F32).reshape(-1, 4)
    scores = np.asarray([d[1] for d in dets], dtype=F32)
    labels = np.asarray([d[2] for d in dets], dtype=np.int64)
    keep = np.asarray(ml_nms(boxes, scores, labels, p), dtype=np.int64)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    mask = cap(scores, p.detections_per_img)
    return boxes[mask], scores[mask], labels[mask]


def box_area(box, convention: str) -> float:
    off = CONVENTION_OFFSET[convention]
    return (box[2] - box[0] + off) * (box[3] - box[1] + off)


def _is_candidate(x, y, box, stride, radius) -> bool:
    x1, y1, x2, y2 = box
    if radius > 0:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        x1, y1 = max(cx - stride * radius, x1), max(cy - stride * radius, y1)
        x2, y2 = min(cx + stride * radius, x2), min(cy + stride * radius, y2)
    return min(x - x1, y - y1, x2 - x, y2 - y) > 0


def targets(level_shapes, strides, gt_boxes, gt_labels, *, radius, norm_reg_targets, convention):
    """Labels (R,), regression targets (R, 4) (zeros on background), centerness (R,) (0 there).

    Args:
        level_shapes: per level (H, W) of the feature map. strides: per level stride.
        gt_boxes: M boxes xyxy (in the network input frame). gt_labels: M labels in 1..C.
    """
    labels, regs, ctrs = [], [], []
    for (height, width), stride, (lo, hi) in zip(level_shapes, strides, SIZE_RANGES):
        for x, y in locations(height, width, stride).astype(float):
            best, best_area = None, math.inf
            for m, box in enumerate(gt_boxes):
                ltrb = (x - box[0], y - box[1], box[2] - x, box[3] - y)
                if not _is_candidate(x, y, box, stride, radius):
                    continue
                if not lo <= max(ltrb) <= hi:
                    continue
                area = box_area(box, convention)
                if area < best_area:
                    best, best_area = m, area
            if best is None:
                labels.append(0)
                regs.append((0.0, 0.0, 0.0, 0.0))
                ctrs.append(0.0)
                continue
            box = gt_boxes[best]
            ltrb = (x - box[0], y - box[1], box[2] - x, box[3] - y)
            horizontal, vertical = sorted(ltrb[0::2]), sorted(ltrb[1::2])
            labels.append(int(gt_labels[best]))
            ctrs.append(math.sqrt(horizontal[0] / horizontal[1] * vertical[0] / vertical[1]))
            div = stride if norm_reg_targets else 1.0
            regs.append(tuple(d / div for d in ltrb))
    return np.asarray(labels), np.asarray(regs).reshape(-1, 4), np.asarray(ctrs)
