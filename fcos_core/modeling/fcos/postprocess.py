"""FCOS post-processing: from head outputs to per-image detections.

Dimension key: N images, L levels, C foreground classes, H_l x W_l size of level l,
R_l locations of level l, K candidates.

As the original FCOS: per level, keep (location, class) pairs whose class probability exceeds
INFERENCE_TH, at most PRE_NMS_TOP_N of them ranked by cls * centerness; decode the boxes from
the locations, score them sqrt(cls * centerness), clip them to the image and drop boxes smaller
than ``min_size``; then merge the levels, run class-aware NMS at NMS_TH and keep the
DETECTIONS_PER_IMG best-scored boxes (ties at the threshold score are all kept, as the original).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.layers import ml_nms
from fcos_core.structures import BoxList
from fcos_core.structures.boxlist_ops import cat_boxlist, remove_small_boxes

# MODEL.FCOS.INFERENCE_TH_ON values: what INFERENCE_TH is compared with.
THRESHOLD_ON = ("cls", "score")


def decode_boxes(locations: Tensor, reg: Tensor) -> Tensor:
    """Boxes from locations and (l, t, r, b) distances.

    Args:
        locations: Tensor[K, 2] (x, y). reg: Tensor[K, 4] distances in pixels.

    Returns:
        Tensor[K, 4] xyxy.
    """
    return torch.cat((locations - reg[:, :2], locations + reg[:, 2:]), dim=1)


def select_over_all_levels(boxlist: BoxList, nms_thresh: float, max_detections: int) -> BoxList:
    """Class-aware NMS then the ``max_detections`` best scores of one image.

    Args:
        boxlist: candidates with fields "scores" and "labels".
        nms_thresh: IoU threshold of the class-aware NMS.
        max_detections: keep this many (all boxes tied with the last kept score too); <= 0: all.
    """
    scores, labels = boxlist.get_field("scores"), boxlist.get_field("labels")
    keep = ml_nms(boxlist.bbox, scores, labels, nms_thresh)  # by decreasing score
    result = boxlist[keep]
    num_detections = len(result)
    if 0 < max_detections < num_detections:
        scores = result.get_field("scores").float()
        threshold = torch.kthvalue(scores, num_detections - max_detections + 1).values
        result = result[scores >= threshold]
    return result


class FCOSPostProcessor(nn.Module):
    """Turns head outputs into detections in the network input frame (un-padded size).

    Args:
        pre_nms_thresh: INFERENCE_TH on the sigmoid class probability.
        pre_nms_top_n: candidates kept per level and image (PRE_NMS_TOP_N).
        nms_thresh: class-aware NMS IoU threshold (NMS_TH).
        detections_per_img: boxes kept per image (TEST.DETECTIONS_PER_IMG).
        min_size: boxes narrower or lower than this are dropped (0 in FCOS).
        bbox_aug_enabled: skip NMS and top-k (test-time augmentation merges first).
        threshold_on: what pre_nms_thresh is compared with (MODEL.FCOS.INFERENCE_TH_ON): "cls",
            the class probability (original FCOS), or "score", sqrt(cls * centerness)
            (torchvision's FCOS).
    """

    def __init__(
        self,
        *,
        pre_nms_thresh: float,
        pre_nms_top_n: int,
        nms_thresh: float,
        detections_per_img: int,
        min_size: float = 0.0,
        bbox_aug_enabled: bool = False,
        threshold_on: str = "cls",
    ) -> None:
        super().__init__()
        if threshold_on not in THRESHOLD_ON:
            raise ValueError(
                f"MODEL.FCOS.INFERENCE_TH_ON must be one of {', '.join(THRESHOLD_ON)}, "
                f"got {threshold_on!r}"
            )
        self.threshold_on = threshold_on
        self.pre_nms_thresh = pre_nms_thresh
        self.pre_nms_top_n = pre_nms_top_n
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.min_size = min_size
        self.bbox_aug_enabled = bbox_aug_enabled

    @classmethod
    def from_config(cls, cfg: CfgNode) -> FCOSPostProcessor:
        """Read MODEL.FCOS.{INFERENCE_TH, PRE_NMS_TOP_N, NMS_TH} and TEST.*."""
        return cls(
            pre_nms_thresh=cfg.MODEL.FCOS.INFERENCE_TH,
            pre_nms_top_n=cfg.MODEL.FCOS.PRE_NMS_TOP_N,
            nms_thresh=cfg.MODEL.FCOS.NMS_TH,
            detections_per_img=cfg.TEST.DETECTIONS_PER_IMG,
            bbox_aug_enabled=cfg.TEST.BBOX_AUG.ENABLED,
            threshold_on=cfg.MODEL.FCOS.INFERENCE_TH_ON,
        )

    def forward(
        self,
        locations: Sequence[Tensor],
        box_cls: Sequence[Tensor],
        box_regression: Sequence[Tensor],
        centerness: Sequence[Tensor],
        image_sizes: Sequence[tuple[int, int]],
    ) -> list[BoxList]:
        """Detections of a batch.

        Args:
            locations: L tensors Tensor[R_l, 2].
            box_cls: L tensors Tensor[N, C, H_l, W_l] logits.
            box_regression: L tensors Tensor[N, 4, H_l, W_l] distances in pixels.
            centerness: L tensors Tensor[N, 1, H_l, W_l] logits.
            image_sizes: N (height, width) of the un-padded images.

        Returns:
            N BoxLists (xyxy, size (width, height)) with fields "scores" and "labels" (1..C).
        """
        per_level = [
            self.forward_for_single_feature_map(loc, cls, reg, ctr, image_sizes)
            for loc, cls, reg, ctr in zip(locations, box_cls, box_regression, centerness)
        ]
        boxlists = [cat_boxlist(list(per_image)) for per_image in zip(*per_level)]
        if self.bbox_aug_enabled:
            return boxlists
        return [
            select_over_all_levels(b, self.nms_thresh, self.detections_per_img) for b in boxlists
        ]

    def forward_for_single_feature_map(
        self,
        locations: Tensor,
        box_cls: Tensor,
        box_regression: Tensor,
        centerness: Tensor,
        image_sizes: Sequence[tuple[int, int]],
    ) -> list[BoxList]:
        """Candidates of one level for every image (see ``forward`` for the shapes)."""
        n, c = box_cls.shape[:2]
        cls_prob = box_cls.permute(0, 2, 3, 1).reshape(n, -1, c).sigmoid()  # (N, R_l, C)
        reg = box_regression.permute(0, 2, 3, 1).reshape(n, -1, 4)  # (N, R_l, 4)
        ctr_prob = centerness.permute(0, 2, 3, 1).reshape(n, -1).sigmoid()  # (N, R_l)
        joint = cls_prob * ctr_prob[:, :, None]  # (N, R_l, C)
        tested = joint.sqrt() if self.threshold_on == "score" else cls_prob
        candidates = tested > self.pre_nms_thresh  # (N, R_l, C)
        return [
            self._candidates_of_image(locations, joint[i], candidates[i], reg[i], image_sizes[i])
            for i in range(n)
        ]

    def _candidates_of_image(
        self,
        locations: Tensor,
        joint: Tensor,
        candidates: Tensor,
        reg: Tensor,
        image_size: tuple[int, int],
    ) -> BoxList:
        """Top candidates of one level of one image.

        Args:
            locations: Tensor[R_l, 2]. joint: Tensor[R_l, C] cls * centerness probability.
            candidates: Tensor[R_l, C] bool. reg: Tensor[R_l, 4]. image_size: (height, width).
        """
        loc_idx, cls_idx = candidates.nonzero(as_tuple=True)  # (K,), (K,)
        scores = joint[loc_idx, cls_idx]  # (K,)
        if scores.numel() > self.pre_nms_top_n:
            scores, top = scores.topk(self.pre_nms_top_n, sorted=False)
            loc_idx, cls_idx = loc_idx[top], cls_idx[top]
        boxes = decode_boxes(locations[loc_idx], reg[loc_idx])  # (K, 4)
        height, width = image_size
        boxlist = BoxList(boxes, (int(width), int(height)), mode="xyxy")
        boxlist.add_field("labels", cls_idx + 1)
        boxlist.add_field("scores", torch.sqrt(scores))
        boxlist = boxlist.clip_to_image(remove_empty=False)
        return remove_small_boxes(boxlist, self.min_size)
