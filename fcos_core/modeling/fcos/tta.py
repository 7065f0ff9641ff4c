"""Test-time augmentation (TEST.BBOX_AUG): several scales and horizontal flips, merged.

Dimension key: N images, H x W size of an original image, K detections.

As the original FCOS (``fcos_core/engine/bbox_aug.py``): every pass starts from the ORIGINAL
image (uint8[H, W, 3] RGB, what the datasets load; the test loader hands them over untransformed
when TEST.BBOX_AUG.ENABLED, like the original's ``BBoxAugCollator``) and goes through the test
transforms: Resize(min size, max size), a horizontal flip for the flipped passes, ToUint8Tensor;
the uint8 batch is padded to DATALOADER.SIZE_DIVISIBILITY and run through the model, which
normalises it on its device (`fcos_core.modeling.preprocess`) as every other batch. The passes
are, in this order:

1. the identity pass at the test size (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST);
2. with BBOX_AUG.H_FLIP, its flipped copy;
3. for each of BBOX_AUG.SCALES, a pass at that shorter side (longer side capped by
   BBOX_AUG.MAX_SIZE), and with BBOX_AUG.SCALE_H_FLIP its flipped copy after it.

The detections of a flipped pass are flipped back (BoxList.transpose), those of every pass are
resized into the frame of the identity pass, all are concatenated and reduced by class-aware NMS
(MODEL.FCOS.NMS_TH) and the TEST.DETECTIONS_PER_IMG cap, as the original's
``select_over_all_levels``. The result is in the identity pass's frame, the frame of plain
inference, so evaluation maps it to the original image size as it does without TTA. The model's
post-processor must skip its own NMS (it does when built with TEST.BBOX_AUG.ENABLED).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from fcos_core.data.transforms import Compose, RandomHorizontalFlip, Resize, ToUint8Tensor
from fcos_core.modeling.fcos.postprocess import select_over_all_levels
from fcos_core.structures import FLIP_LEFT_RIGHT, BoxList, to_image_list
from fcos_core.structures.boxlist_ops import cat_boxlist


class Pass(NamedTuple):
    """One augmentation: shorter side, longer-side cap, horizontal flip."""

    min_size: int
    max_size: int
    flip: bool


class FCOSTestTimeAugmentation:
    """Runs a model on transformed copies of the original images and merges the detections.

    Args:
        min_size_test, max_size_test: the plain test size (the identity pass).
        scales: extra shorter-side sizes. max_size: longer-side cap for ``scales``.
        h_flip: add a flipped pass at the test size. scale_h_flip: add one at each extra scale.
        size_divisibility: padding multiple of the batched inputs.
        nms_thresh: class-aware NMS threshold of the merge. detections_per_img: cap per image.
        detections_per_img_ties: TEST.DETECTIONS_PER_IMG_TIES of that cap ("keep" or "cut").
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
        self.passes = [Pass(min_size_test, max_size_test, False)]
        if h_flip:
            self.passes.append(Pass(min_size_test, max_size_test, True))
        for scale in scales:
            self.passes.append(Pass(scale, max_size, False))
            if scale_h_flip:
                self.passes.append(Pass(scale, max_size, True))
        self.size_divisibility = size_divisibility
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.detections_per_img_ties = detections_per_img_ties

    @classmethod
    def from_config(cls, cfg: CfgNode) -> FCOSTestTimeAugmentation:
        """Read TEST.BBOX_AUG.*, INPUT.MIN/MAX_SIZE_TEST, DATALOADER.SIZE_DIVISIBILITY and the
        NMS keys."""
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

    def transform(self, augmentation: Pass) -> Compose:
        """The test transforms of one pass (image in, uint8 Tensor[3, h, w] RGB out)."""
        steps = [Resize(augmentation.min_size, augmentation.max_size)]
        if augmentation.flip:
            steps.append(RandomHorizontalFlip(1.0))
        return Compose([*steps, ToUint8Tensor()])

    @torch.no_grad()
    def __call__(
        self,
        model: nn.Module,
        images: Sequence[np.ndarray],
        device: torch.device | str = "cpu",
    ) -> list[BoxList]:
        """Merged detections of every pass.

        Args:
            model: a detector in eval mode mapping an ImageList (uint8, RGB 0..255) to N
                BoxLists.
            images: N original images, uint8[H, W, 3] RGB.
            device: where the model runs.

        Returns:
            N BoxLists with "scores" and "labels", in the frame of the identity pass.
        """
        check_original_images(images, "TEST.BBOX_AUG", "test-time augmentation")
        identity = self.run_pass(model, images, self.passes[0], device)
        per_pass = [identity]
        for augmentation in self.passes[1:]:
            detections = self.run_pass(model, images, augmentation, device)
            per_pass.append([d.resize(i.size) for d, i in zip(detections, identity)])
        return [self.merge(list(dets)) for dets in zip(*per_pass)]

    def run_pass(
        self, model: nn.Module, images: Sequence[np.ndarray], augmentation: Pass, device
    ) -> list[BoxList]:
        """Detections of one pass, flipped back, in the frame of that pass's resized image."""
        transform = self.transform(augmentation)
        inputs = [transform(image, None)[0] for image in images]
        detections = detect_inputs(model, inputs, self.size_divisibility, device)
        if augmentation.flip:
            detections = [d.transpose(FLIP_LEFT_RIGHT) for d in detections]
        return detections

    def merge(self, detections: list[BoxList]) -> BoxList:
        """One image's detections of all passes (same frame) -> NMS and the per-image cap.

        As the original's ``select_over_all_levels``, through the one post-processing core, in
        the detections' box convention.
        """
        return select_over_all_levels(
            cat_boxlist(detections),
            self.nms_thresh,
            self.detections_per_img,
            self.detections_per_img_ties,
        )


def detect_inputs(
    model: nn.Module, inputs: Sequence[torch.Tensor], size_divisibility: int, device
) -> list[BoxList]:
    """The model's detections ("scores", "labels") of transformed images Tensor[3, h_i, w_i],
    batched with padding to ``size_divisibility`` on ``device``; each in its input's frame."""
    batch = to_image_list(list(inputs), size_divisibility).to(torch.device(device))
    return [d.copy_with_fields(["scores", "labels"]) for d in model(batch)]


def check_original_images(images: Sequence[np.ndarray], key: str, purpose: str) -> None:
    """TypeError naming ``key`` unless every image is an original uint8[H, W, 3] RGB array, what
    the test loader hands over untransformed when ``key``.ENABLED (TTA, slicing)."""
    for i, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            found = getattr(image, "shape", type(image).__name__)
            raise TypeError(
                f"{key}: {purpose} needs the original images as uint8[H, W, 3] RGB arrays (the "
                f"test loader gives them when {key}.ENABLED), image {i} is {found}"
            )
