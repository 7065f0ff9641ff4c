"""PASCAL VOC detection AP at IoU 0.5: VOC2007 11-point and area-under-curve variants.

Boxes use the project's convention (width = x2 - x1, no +1). Ground truth marked "difficult" is
neither a hit nor a miss: detections matched to it are ignored.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from fcos_core.structures.bounding_box import BoxList
from fcos_core.structures.boxlist_ops import boxlist_iou

logger = logging.getLogger(__name__)

VOC_IOU_THRESH = 0.5
ELEVEN_POINTS = np.arange(0.0, 1.1, 0.1)


def _match_image(
    pred: BoxList, gt: BoxList, label: int, iou_thresh: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores and match flags (1 hit, 0 miss, -1 ignored) of one image's detections of ``label``.

    Returns:
        (scores [P], flags [P], number of non-difficult ground-truth boxes).
    """
    p = pred[pred.get_field("labels") == label]
    g = gt[gt.get_field("labels") == label]
    difficult = np.zeros(len(g), dtype=bool)
    if g.has_field("difficult"):
        difficult = g.get_field("difficult").bool().numpy()
    scores = p.get_field("scores").numpy().astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    scores = scores[order]
    flags = np.zeros(len(p), dtype=np.int8)
    if len(g) and len(p):
        ious = boxlist_iou(p[torch.as_tensor(order)], g).numpy()  # (P, G)
        best, best_iou = ious.argmax(axis=1), ious.max(axis=1)
        taken = np.zeros(len(g), dtype=bool)
        for i in range(len(p)):
            j = best[i]
            if best_iou[i] < iou_thresh:
                continue
            if difficult[j]:
                flags[i] = -1
            elif not taken[j]:
                flags[i], taken[j] = 1, True
    return scores, flags, int((~difficult).sum())


def calc_detection_voc_prec_rec(
    pred_boxlists: list[BoxList], gt_boxlists: list[BoxList], iou_thresh: float = VOC_IOU_THRESH
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Precision and recall curves per label.

    Returns:
        label -> (precision [D], recall [D]) over that label's D non-ignored detections sorted by
        score (recall is empty-safe: labels without ground truth get no entry).
    """
    scores, flags, n_pos = defaultdict(list), defaultdict(list), defaultdict(int)
    for pred, gt in zip(pred_boxlists, gt_boxlists):
        labels = set(pred.get_field("labels").tolist()) | set(gt.get_field("labels").tolist())
        for label in labels:
            s, f, n = _match_image(pred, gt, label, iou_thresh)
            scores[label].append(s)
            flags[label].append(f)
            n_pos[label] += n
    curves = {}
    for label in sorted(n_pos):
        if n_pos[label] == 0:
            continue
        s, f = np.concatenate(scores[label]), np.concatenate(flags[label])
        f = f[np.argsort(-s, kind="stable")]
        f = f[f >= 0]
        tp, fp = np.cumsum(f == 1), np.cumsum(f == 0)
        curves[label] = (tp / np.maximum(tp + fp, 1), tp / n_pos[label])
    return curves


def calc_detection_voc_ap(prec: np.ndarray, rec: np.ndarray, use_07_metric: bool = False) -> float:
    """AP of one precision/recall curve: 11-point (VOC2007) or area under the envelope."""
    if use_07_metric:
        return float(
            sum((prec[rec >= t].max() if np.any(rec >= t) else 0.0) for t in ELEVEN_POINTS)
            / len(ELEVEN_POINTS)
        )
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def eval_detection_voc(
    pred_boxlists: list[BoxList],
    gt_boxlists: list[BoxList],
    iou_thresh: float = VOC_IOU_THRESH,
    use_07_metric: bool = True,
) -> dict[str, Any]:
    """``{"ap": {label: AP}, "map": mean AP}`` over labels that have ground truth."""
    curves = calc_detection_voc_prec_rec(pred_boxlists, gt_boxlists, iou_thresh)
    ap = {label: calc_detection_voc_ap(p, r, use_07_metric) for label, (p, r) in curves.items()}
    return {"ap": ap, "map": float(np.mean(list(ap.values()))) if ap else 0.0}


def do_voc_evaluation(
    dataset: Any,
    predictions: list[BoxList],
    output_folder: str | None = None,
    box_only: bool = False,
    **_: Any,
) -> dict[str, Any]:
    """Evaluate detections on a VOC-style dataset (``get_groundtruth`` with "difficult").

    Returns:
        ``{"map": VOC07 11-point mAP, "map_area": area mAP, "ap": {class name: 11-point AP}}``;
        also written to ``output_folder/result.txt``.
    """
    if box_only:
        raise ValueError("box_only (proposal recall) evaluation is only implemented for COCO")
    gts, preds = [], []
    for index, prediction in enumerate(predictions):
        gt = dataset.get_groundtruth(index)
        gts.append(gt)
        preds.append(prediction.resize(gt.size))
    result_07 = eval_detection_voc(preds, gts, use_07_metric=True)
    result_area = eval_detection_voc(preds, gts, use_07_metric=False)
    names = {label: dataset.map_class_id_to_class_name(label) for label in result_07["ap"]}
    lines = [
        f"mAP (VOC07 11-point): {result_07['map']:.4f}",
        f"mAP (area): {result_area['map']:.4f}",
    ]
    lines += [f"{names[k]:<15}: {ap:.4f}" for k, ap in result_07["ap"].items()]
    logger.info("VOC evaluation:\n%s", "\n".join(lines))
    if output_folder:
        with open(os.path.join(output_folder, "result.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    return {
        "map": result_07["map"],
        "map_area": result_area["map"],
        "ap": {names[k]: v for k, v in result_07["ap"].items()},
    }
