"""The FCOS post-processing core: tensors in, tensors out, written once.

Eager inference (``postprocess.FCOSPostProcessor``), the test-time-augmentation merge
(``tta.py``) and the ONNX graph (``fcos_core.export.onnx_export``) all call these functions; only
the callers wrap the results in ``BoxList``s. The rules are the original FCOS's:

1. ``level_candidates`` (per image and level): (location, class) pairs whose class probability
   (or final score, ``threshold_on="score"``) exceeds ``pre_nms_thresh``; at most
   ``pre_nms_top_n`` of them by cls * centerness (``topk``, as the original); boxes decoded from
   the locations, scored sqrt(cls * centerness), clipped to the image in the box convention and
   filtered by ``min_size``.
2. ``select_detections`` (per image, all levels): class-aware NMS in the box convention
   (``class_aware_nms``), then ``cap_detections``: with ties "keep" every box scoring at least
   the ``detections_per_img``-th best score (the original's kthvalue rule), with "cut" exactly
   the first ``detections_per_img`` (torchvision's).

Under ``torch.onnx.export`` the same code runs; the two data-dependent choices are spelled
shape-safely there (``top_candidates`` sorts, NMS becomes ONNX NonMaxSuppression).

Dimension key: R locations of a level, C classes, K candidates, D detections.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from yacs.config import CfgNode

from fcos_core.config.checks import check_choice
from fcos_core.layers.nms import ml_nms
from fcos_core.structures.box_convention import (
    DEFAULT_BOX_CONVENTION,
    box_offset,
    check_box_convention,
    nms_rule,
)

# MODEL.FCOS.INFERENCE_TH_ON values: what INFERENCE_TH is compared with.
THRESHOLD_ON = ("cls", "score")
# TEST.DETECTIONS_PER_IMG_TIES values: "keep" (original FCOS), "cut" (torchvision).
DETECTIONS_PER_IMG_TIES = ("keep", "cut")


@dataclass(frozen=True)
class DetectionSettings:
    """What the post-processing core reads from the config.

    Attributes:
        pre_nms_thresh: MODEL.FCOS.INFERENCE_TH.
        pre_nms_top_n: MODEL.FCOS.PRE_NMS_TOP_N (candidates per level and image).
        nms_thresh: MODEL.FCOS.NMS_TH (class-aware NMS IoU threshold).
        detections_per_img: TEST.DETECTIONS_PER_IMG (<= 0: no cap).
        min_size: boxes narrower or lower than this are dropped (0 in FCOS).
        threshold_on: MODEL.FCOS.INFERENCE_TH_ON, "cls" or "score".
        box_convention: MODEL.BOX_CONVENTION, "plus_one" or "continuous".
        detections_per_img_ties: TEST.DETECTIONS_PER_IMG_TIES, "keep" or "cut".
    """

    pre_nms_thresh: float
    pre_nms_top_n: int
    nms_thresh: float
    detections_per_img: int
    min_size: float = 0.0
    threshold_on: str = "cls"
    box_convention: str = DEFAULT_BOX_CONVENTION
    detections_per_img_ties: str = "keep"

    def __post_init__(self) -> None:
        check_choice("MODEL.FCOS.INFERENCE_TH_ON", self.threshold_on, THRESHOLD_ON)
        check_choice(
            "TEST.DETECTIONS_PER_IMG_TIES", self.detections_per_img_ties, DETECTIONS_PER_IMG_TIES
        )
        check_box_convention(self.box_convention)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> DetectionSettings:
        """Read MODEL.FCOS.{INFERENCE_TH, INFERENCE_TH_ON, PRE_NMS_TOP_N, NMS_TH},
        MODEL.BOX_CONVENTION and TEST.{DETECTIONS_PER_IMG, DETECTIONS_PER_IMG_TIES}."""
        return cls(
            pre_nms_thresh=float(cfg.MODEL.FCOS.INFERENCE_TH),
            pre_nms_top_n=int(cfg.MODEL.FCOS.PRE_NMS_TOP_N),
            nms_thresh=float(cfg.MODEL.FCOS.NMS_TH),
            detections_per_img=int(cfg.TEST.DETECTIONS_PER_IMG),
            threshold_on=cfg.MODEL.FCOS.INFERENCE_TH_ON,
            box_convention=cfg.MODEL.BOX_CONVENTION,
            detections_per_img_ties=cfg.TEST.DETECTIONS_PER_IMG_TIES,
        )


def decode_boxes(locations: Tensor, box_regression: Tensor) -> Tensor:
    """Boxes from locations Tensor[K, 2] (x, y) and (l, t, r, b) distances Tensor[K, 4].

    Returns:
        Tensor[K, 4] xyxy (no offset in either convention: the original decodes this way).
    """
    return torch.cat((locations - box_regression[:, :2], locations + box_regression[:, 2:]), dim=1)


def clip_boxes(boxes: Tensor, height: int | Tensor, width: int | Tensor, convention: str) -> Tensor:
    """Clamp xyxy boxes Tensor[K, 4] to [0, width] x [0, height] ("continuous") or to the pixels
    0..width - 1 x 0..height - 1 ("plus_one"), as ``BoxList.clip_to_image``."""
    off = box_offset(convention)
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    right, bottom = width - off, height - off
    return torch.stack(
        (x1.clamp(0, right), y1.clamp(0, bottom), x2.clamp(0, right), y2.clamp(0, bottom)), dim=1
    )


def top_candidates(scores: Tensor, k: int) -> Tensor | None:
    """Indices of the ``k`` best of ``scores`` Tensor[K], or None when all K <= k are kept.

    Eager: ``topk(sorted=False)`` when K > k, as the original. Traced for export: the first k of
    a descending sort (the same set barring ties at the cut; the graph needs no branch on K).
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return scores.argsort(descending=True)[:k]
    if scores.numel() > k:
        return scores.topk(k, sorted=False).indices
    return None


def level_candidates(
    settings: DetectionSettings,
    locations: Tensor,
    cls_logits: Tensor,
    box_regression: Tensor,
    centerness: Tensor,
    height: int | Tensor,
    width: int | Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Candidates of one level of one image.

    Args:
        settings: the post-processing settings.
        locations: Tensor[R, 2]. cls_logits: Tensor[R, C]. box_regression: Tensor[R, 4] pixel
            distances. centerness: Tensor[R] logits. height, width: the un-padded image size.

    Returns:
        boxes Tensor[K, 4] xyxy (clipped), scores Tensor[K], labels Tensor[K] int64 in 1..C.
    """
    num_classes = cls_logits.shape[1]
    cls_prob = cls_logits.sigmoid()  # (R, C)
    joint = cls_prob * centerness.sigmoid()[:, None]  # (R, C)
    tested = joint.sqrt() if settings.threshold_on == "score" else cls_prob
    flat = (tested > settings.pre_nms_thresh).reshape(-1).nonzero().reshape(-1)  # (K,)
    scores = joint.reshape(-1)[flat]  # (K,)
    top = top_candidates(scores, settings.pre_nms_top_n)
    if top is not None:
        flat, scores = flat[top], scores[top]
    loc = torch.div(flat, num_classes, rounding_mode="floor")  # (K,)
    boxes = decode_boxes(locations[loc], box_regression[loc])  # (K, 4)
    boxes = clip_boxes(boxes, height, width, settings.box_convention)
    labels = flat % num_classes + 1
    if settings.min_size > 0:
        off = box_offset(settings.box_convention)
        wh = boxes[:, 2:] - boxes[:, :2] + off  # (K, 2)
        big = (wh >= settings.min_size).all(dim=1)
        boxes, scores, labels = boxes[big], scores[big], labels[big]
    return boxes, scores.sqrt(), labels


def class_aware_nms(
    boxes: Tensor, scores: Tensor, labels: Tensor, nms_thresh: float, convention: str
) -> Tensor:
    """The one class-aware NMS: indices Tensor[D] kept by ``ml_nms`` in ``convention``, by
    decreasing score."""
    threshold, offset = nms_rule(convention, nms_thresh)
    return ml_nms(boxes, scores, labels, threshold, offset=offset)


def cap_detections(scores: Tensor, max_detections: int, ties: str) -> Tensor:
    """Which detections stay under the cap, as a bool mask Tensor[D].

    Args:
        scores: Tensor[D] in decreasing order (NMS output order).
        max_detections: the cap (<= 0: keep all).
        ties: "keep": every score >= the max_detections-th best (the original's kthvalue rule;
            more than max_detections stay when scores tie there); "cut": exactly the first
            max_detections.
    """
    if max_detections <= 0:
        return torch.ones_like(scores, dtype=torch.bool)
    if ties == "cut":
        return torch.arange(scores.shape[0], device=scores.device) < max_detections
    check_choice("TEST.DETECTIONS_PER_IMG_TIES", ties, DETECTIONS_PER_IMG_TIES)
    floor = scores.new_full((max_detections,), float("-inf"))
    threshold = torch.cat((scores, floor))[max_detections - 1]  # -inf when D < max_detections
    return scores >= threshold


def select_detections(
    settings: DetectionSettings, boxes: Tensor, scores: Tensor, labels: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Class-aware NMS and the per-image cap over all candidates of one image.

    Args:
        boxes: Tensor[K, 4] xyxy. scores: Tensor[K]. labels: Tensor[K].

    Returns:
        boxes Tensor[D, 4], scores Tensor[D] (decreasing), labels Tensor[D].
    """
    keep = class_aware_nms(boxes, scores, labels, settings.nms_thresh, settings.box_convention)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    capped = cap_detections(scores, settings.detections_per_img, settings.detections_per_img_ties)
    return boxes[capped], scores[capped], labels[capped]


__all__ = [
    "DETECTIONS_PER_IMG_TIES",
    "THRESHOLD_ON",
    "DetectionSettings",
    "cap_detections",
    "class_aware_nms",
    "clip_boxes",
    "decode_boxes",
    "level_candidates",
    "select_detections",
    "top_candidates",
]
