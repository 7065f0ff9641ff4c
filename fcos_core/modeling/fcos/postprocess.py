"""FCOS post-processing: from head outputs to per-image detections (``BoxList``s).

Dimension key: N images, L levels, C foreground classes, H_l x W_l size of level l,
R_l locations of level l, K candidates.

The rules live in ``inference_core`` (tensors only, shared with TTA and the ONNX graph); this
module reshapes the head outputs per image and level, calls the core and wraps the results in
BoxLists of the configured box convention (MODEL.BOX_CONVENTION). As the original FCOS: per
level, candidates above INFERENCE_TH, at most PRE_NMS_TOP_N by cls * centerness, decoded, scored
sqrt(cls * centerness) and clipped; then, over all levels, class-aware NMS at NMS_TH and the
DETECTIONS_PER_IMG best (TEST.DETECTIONS_PER_IMG_TIES says what happens to ties at the cut).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.modeling.fcos.inference_core import (
    THRESHOLD_ON,
    DetectionSettings,
    decode_boxes,
    level_candidates,
    select_detections,
)
from fcos_core.structures import BoxList
from fcos_core.structures.boxlist_ops import cat_boxlist


def select_over_all_levels(
    boxlist: BoxList, nms_thresh: float, max_detections: int, ties: str = "keep"
) -> BoxList:
    """Class-aware NMS (in the BoxList's convention) then the ``max_detections`` best scores.

    Args:
        boxlist: candidates of one image with fields "scores" and "labels".
        nms_thresh: IoU threshold of the class-aware NMS.
        max_detections: the cap (<= 0: all).
        ties: "keep" (boxes tied with the last kept score stay, the original) or "cut".
    """
    settings = DetectionSettings(
        pre_nms_thresh=0.0,
        pre_nms_top_n=0,
        nms_thresh=nms_thresh,
        detections_per_img=max_detections,
        box_convention=boxlist.convention,
        detections_per_img_ties=ties,
    )
    return detections_to_boxlist(boxlist, *_select(settings, boxlist))


def _select(settings: DetectionSettings, boxlist: BoxList) -> tuple[Tensor, Tensor, Tensor]:
    xyxy = boxlist.convert("xyxy")
    return select_detections(
        settings, xyxy.bbox, xyxy.get_field("scores"), xyxy.get_field("labels")
    )


def detections_to_boxlist(
    like: BoxList | tuple[int, int], boxes: Tensor, scores: Tensor, labels: Tensor, **kw: str
) -> BoxList:
    """xyxy BoxList with "labels" and "scores" of the image of ``like`` (a BoxList, whose size
    and convention are taken) or of size (width, height) and ``convention=...``."""
    if isinstance(like, BoxList):
        out = BoxList(boxes, like.size, mode="xyxy", convention=like.convention)
    else:
        out = BoxList(boxes, like, mode="xyxy", **kw)
    out.add_field("labels", labels)
    out.add_field("scores", scores)
    return out


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
        box_convention: MODEL.BOX_CONVENTION ("plus_one" or "continuous").
        detections_per_img_ties: TEST.DETECTIONS_PER_IMG_TIES ("keep" or "cut").
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
        box_convention: str = DetectionSettings.box_convention,
        detections_per_img_ties: str = "keep",
    ) -> None:
        super().__init__()
        self.pre_nms_thresh = pre_nms_thresh
        self.pre_nms_top_n = pre_nms_top_n
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.min_size = min_size
        self.threshold_on = threshold_on
        self.box_convention = box_convention
        self.detections_per_img_ties = detections_per_img_ties
        self.bbox_aug_enabled = bbox_aug_enabled
        _ = self.settings  # checks the enum values now, not at the first image

    @classmethod
    def from_config(cls, cfg: CfgNode) -> FCOSPostProcessor:
        """Read ``DetectionSettings.from_config``'s keys and TEST.BBOX_AUG.ENABLED."""
        settings = asdict(DetectionSettings.from_config(cfg))
        return cls(**settings, bbox_aug_enabled=bool(cfg.TEST.BBOX_AUG.ENABLED))

    @property
    def settings(self) -> DetectionSettings:
        """The core's settings, from the (original-named, assignable) attributes."""
        return DetectionSettings(
            pre_nms_thresh=self.pre_nms_thresh,
            pre_nms_top_n=self.pre_nms_top_n,
            nms_thresh=self.nms_thresh,
            detections_per_img=self.detections_per_img,
            min_size=self.min_size,
            threshold_on=self.threshold_on,
            box_convention=self.box_convention,
            detections_per_img_ties=self.detections_per_img_ties,
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
            self.forward_for_single_feature_map(loc, cls, box_regression_l, ctr, image_sizes)
            for loc, cls, box_regression_l, ctr in zip(
                locations, box_cls, box_regression, centerness
            )
        ]
        boxlists = [cat_boxlist(list(per_image)) for per_image in zip(*per_level)]
        if self.bbox_aug_enabled:
            return boxlists
        settings = self.settings
        return [detections_to_boxlist(b, *_select(settings, b)) for b in boxlists]

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
        logits = box_cls.permute(0, 2, 3, 1).reshape(n, -1, c)  # (N, R_l, C)
        box_regression = box_regression.permute(0, 2, 3, 1).reshape(n, -1, 4)  # (N, R_l, 4)
        ctr = centerness.permute(0, 2, 3, 1).reshape(n, -1)  # (N, R_l)
        settings, out = self.settings, []
        for i, (height, width) in enumerate(image_sizes):
            found = level_candidates(
                settings, locations, logits[i], box_regression[i], ctr[i], height, width
            )
            size = (int(width), int(height))
            out.append(detections_to_boxlist(size, *found, convention=settings.box_convention))
        return out


__all__ = [
    "THRESHOLD_ON",
    "FCOSPostProcessor",
    "decode_boxes",
    "detections_to_boxlist",
    "select_over_all_levels",
]
