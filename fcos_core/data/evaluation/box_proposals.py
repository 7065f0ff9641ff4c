"""Average recall of class-agnostic boxes (``box_only`` evaluation, e.g. MODEL.RPN_ONLY).

For each image the top-``limit`` boxes (by "objectness", else "scores") are matched greedily to
the non-crowd ground truth of an area range; recall is averaged over IoU thresholds
0.50:0.05:0.95 (COCO's AR).
"""

from __future__ import annotations

from typing import Any

import torch

from fcos_core.structures.bounding_box import BoxList
from fcos_core.structures.boxlist_ops import boxlist_iou

AREA_RANGES = {"": (0.0, 1e10), "s": (0.0, 32.0**2), "m": (32.0**2, 96.0**2), "l": (96.0**2, 1e10)}
LIMITS = (100, 1000)
IOU_THRESHOLDS = torch.arange(0.5, 0.95 + 1e-5, 0.05)


def _gt_for_image(
    dataset: Any, index: int, area_range: tuple[float, float], convention: str
) -> BoxList:
    """The json's non-crowd boxes of ``index`` in ``area_range``, xyxy in ``convention``."""
    info = dataset.get_img_info(index)
    anns = dataset.coco.loadAnns(dataset.coco.getAnnIds(imgIds=dataset.id_to_img_map[index]))
    anns = [
        a for a in anns if not a.get("iscrowd", 0) and area_range[0] <= a["area"] <= area_range[1]
    ]
    boxes = torch.as_tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
    size = (info["width"], info["height"])
    return BoxList(boxes, size, mode="xywh", convention=convention).convert("xyxy")


def _greedy_overlaps(ious: torch.Tensor) -> torch.Tensor:
    """Greedy one-to-one matching: per ground truth, the IoU it is covered with.

    Args:
        ious: Tensor[P, G].

    Returns:
        Tensor[G] of matched IoUs (order of matching, as in COCO's recall code).
    """
    ious = ious.clone()
    covered = torch.zeros(ious.shape[1])
    for j in range(min(ious.shape)):
        best_per_gt, best_pred = ious.max(dim=0)  # (G,)
        gt_ovr, gt_ind = best_per_gt.max(dim=0)
        covered[j] = gt_ovr
        ious[best_pred[gt_ind], :] = -1
        ious[:, gt_ind] = -1
    return covered


def average_recall(predictions: list[BoxList], dataset: Any, area: str, limit: int) -> float:
    """COCO AR of the top ``limit`` boxes per image for the area range ``area``."""
    overlaps, num_gt = [], 0
    for index, prediction in enumerate(predictions):
        gt = _gt_for_image(dataset, index, AREA_RANGES[area], prediction.convention)
        num_gt += len(gt)
        if len(gt) == 0 or len(prediction) == 0:
            continue
        key = "objectness" if prediction.has_field("objectness") else "scores"
        order = prediction.get_field(key).argsort(descending=True)[:limit]
        prediction = prediction[order].resize(gt.size)
        overlaps.append(_greedy_overlaps(boxlist_iou(prediction, gt)))
    if num_gt == 0:
        return -1.0
    covered = torch.cat(overlaps) if overlaps else torch.zeros(0)
    recalls = torch.stack([(covered >= t).sum() / num_gt for t in IOU_THRESHOLDS])
    return float(recalls.mean())


def evaluate_box_proposals(predictions: list[BoxList], dataset: Any) -> dict[str, float]:
    """``{"AR@100", "ARs@100", ..., "ARl@1000"}`` for a COCO-style dataset."""
    return {
        f"AR{area}@{limit}": average_recall(predictions, dataset, area, limit)
        for limit in LIMITS
        for area in AREA_RANGES
    }
