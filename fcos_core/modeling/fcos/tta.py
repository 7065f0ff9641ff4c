"""Test-time augmentation (TEST.BBOX_AUG): several scales and horizontal flips, merged.

Dimension key: N images, H x W size of an image as given.

As the original FCOS ``im_detect_bbox_aug``: the model runs on the image at the test size
(INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), optionally flipped (H_FLIP), and at every extra scale of
SCALES (capped by BBOX_AUG.MAX_SIZE), optionally flipped too (SCALE_H_FLIP). The detections of each
pass are mapped back (un-flipped, resized) into the frame of the given image, concatenated, and
reduced by class-aware NMS (MODEL.FCOS.NMS_TH) and the TEST.DETECTIONS_PER_IMG top scores.

The images given are the normalised network inputs of the ordinary test transform (already at
the test size), so the identity pass runs on them unchanged and the detections come back in
their frame, like the detections of a plain forward pass. The model's post-processor should skip
its own NMS (it does when built with TEST.BBOX_AUG.ENABLED, as the original).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.modeling.fcos.postprocess import select_over_all_levels
from fcos_core.structures import FLIP_LEFT_RIGHT, BoxList, ImageList, to_image_list
from fcos_core.structures.boxlist_ops import cat_boxlist


def scaled_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(height, width) with the shorter side ``min_size`` and the longer one at most ``max_size``.

    The rule of the test-time Resize transform of maskrcnn-benchmark (sizes truncated to ints;
    ``max_size`` <= 0 means no cap).
    """
    size = min_size
    short_side, long_side = float(min(height, width)), float(max(height, width))
    if max_size > 0 and long_side / short_side * size > max_size:
        size = int(round(max_size * short_side / long_side))
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


class FCOSTestTimeAugmentation:
    """Runs a model on transformed copies of the images and merges the detections.

    Args:
        min_size_test, max_size_test: the plain test size (the identity pass).
        scales: extra shorter-side sizes. max_size: longer-side cap for ``scales``.
        h_flip: add a flipped pass at the test size. scale_h_flip: add one at each extra scale.
        size_divisibility: padding multiple of the batched inputs.
        nms_thresh: class-aware NMS threshold of the merge. detections_per_img: top-k per image.
        detections_per_img_ties: TEST.DETECTIONS_PER_IMG_TIES of that top-k ("keep" or "cut").
    """

    def __init__(
        self,
        *,
        min_size_test: int,
        max_size_test: int,
        scales: Sequence[int] = (),
        max_size: int = 4000,
        h_flip: bool = False,
        scale_h_flip: bool = False,
        size_divisibility: int = 0,
        nms_thresh: float = 0.6,
        detections_per_img: int = 100,
        detections_per_img_ties: str = "keep",
    ) -> None:
        self.passes: list[tuple[int, int, bool]] = [(min_size_test, max_size_test, False)]
        if h_flip:
            self.passes.append((min_size_test, max_size_test, True))
        for scale in scales:
            self.passes.append((scale, max_size, False))
            if scale_h_flip:
                self.passes.append((scale, max_size, True))
        self.size_divisibility = size_divisibility
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.detections_per_img_ties = detections_per_img_ties

    @classmethod
    def from_config(cls, cfg: CfgNode) -> FCOSTestTimeAugmentation:
        """Read TEST.BBOX_AUG.*, INPUT.*_SIZE_TEST, DATALOADER.SIZE_DIVISIBILITY and NMS keys."""
        aug = cfg.TEST.BBOX_AUG
        return cls(
            min_size_test=cfg.INPUT.MIN_SIZE_TEST,
            max_size_test=cfg.INPUT.MAX_SIZE_TEST,
            scales=tuple(aug.SCALES),
            max_size=aug.MAX_SIZE,
            h_flip=aug.H_FLIP,
            scale_h_flip=aug.SCALE_H_FLIP,
            size_divisibility=cfg.DATALOADER.SIZE_DIVISIBILITY,
            nms_thresh=cfg.MODEL.FCOS.NMS_TH,
            detections_per_img=cfg.TEST.DETECTIONS_PER_IMG,
            detections_per_img_ties=cfg.TEST.DETECTIONS_PER_IMG_TIES,
        )

    @torch.no_grad()
    def __call__(self, model: nn.Module, images: ImageList | Sequence[Tensor]) -> list[BoxList]:
        """Merged detections of every pass.

        Args:
            model: a detector in eval mode mapping an ImageList to N BoxLists.
            images: an ImageList or N tensors Tensor[3, H, W] (normalised network inputs).

        Returns:
            N BoxLists with "scores" and "labels", in the frame of the given images.
        """
        if isinstance(images, ImageList):
            images = [t[:, :h, :w] for t, (h, w) in zip(images.tensors, images.image_sizes)]
        per_pass = [self._run_pass(model, images, *p) for p in self.passes]
        return [
            select_over_all_levels(
                cat_boxlist(list(dets)),
                self.nms_thresh,
                self.detections_per_img,
                self.detections_per_img_ties,
            )
            for dets in zip(*per_pass)
        ]

    def _run_pass(
        self, model: nn.Module, images: Sequence[Tensor], min_size: int, max_size: int, flip: bool
    ) -> list[BoxList]:
        """Detections of one transformed pass, mapped back to each image's own frame."""
        inputs = []
        for image in images:
            height, width = image.shape[-2:]
            size = scaled_size(height, width, min_size, max_size)
            if size != (height, width):
                image = F.interpolate(
                    image[None], size=size, mode="bilinear", align_corners=False, antialias=True
                )[0]
            inputs.append(image.flip(-1) if flip else image)
        outputs = model(to_image_list(inputs, self.size_divisibility))
        mapped = []
        for dets, image in zip(outputs, images):
            dets = dets.copy_with_fields(["scores", "labels"])
            if flip:
                dets = dets.transpose(FLIP_LEFT_RIGHT)
            mapped.append(dets.resize((image.shape[-1], image.shape[-2])))
        return mapped


def im_detect_bbox_aug(
    model: nn.Module, images: ImageList | Sequence[Tensor], cfg: CfgNode
) -> list[BoxList]:
    """Test-time-augmented detections of a batch (see ``FCOSTestTimeAugmentation``)."""
    return FCOSTestTimeAugmentation.from_config(cfg)(model, images)
