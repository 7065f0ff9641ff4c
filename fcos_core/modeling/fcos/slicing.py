"""Sliced inference for large images (TEST.SLICE): tiles of the original image, merged.

Dimension key: N images, H x W size of an original image, T tiles of an image, K detections.

Small objects vanish when a large image is shrunk to the test size. Slicing runs the model on
square tiles cut from the ORIGINAL image (uint8[H, W, 3] RGB, what the datasets load; the test
loader hands them over untransformed when TEST.SLICE.ENABLED, as for TEST.BBOX_AUG):

1. Tile grid (``tile_windows``): along each axis tiles of TILE_SIZE start every
   TILE_SIZE - OVERLAP pixels; the last one is aligned to the image border (it may overlap its
   neighbour more, it is never smaller), and an image shorter than a tile gets one tile that
   spans it.
2. Each tile goes through the test transforms (``build_transforms(cfg, is_train=False)``:
   resized like a whole image, so INPUT.MIN_SIZE_TEST = TILE_SIZE keeps the image's scale) and
   the model, whose post-processor runs as in plain inference. The detections are resized back
   to the tile's own pixels and shifted by the tile's corner into the original image
   (``shift_detections``; a shift is the same in both box conventions, and the post-processor
   has already clipped each box to its tile in the model's convention).
3. With INCLUDE_FULL_IMAGE the whole image runs too (at the test size) and its detections are
   resized to the original image.
4. Merge (``select_over_all_levels``, i.e. the post-processing core's ``class_aware_nms`` and
   ``cap_detections``): class-aware NMS at MODEL.FCOS.NMS_TH in the original image's pixels,
   where the +1 IoU of "plus_one" is measured, then the TEST.DETECTIONS_PER_IMG cap.
5. The result is resized into the frame of plain inference (the whole image at the test size,
   ``get_size``), the frame evaluation and the predictor map back to the original size, as the
   TTA merge does.

The test-time augmentation of TEST.BBOX_AUG is not combined with slicing: the post-processor
would skip its per-tile NMS for TTA, and the passes of each tile are not defined; asking for
both is a ConfigError.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from fcos_core.config.checks import ConfigError
from fcos_core.data.transforms import build_transforms, get_size
from fcos_core.modeling.fcos.postprocess import detections_to_boxlist, select_over_all_levels
from fcos_core.modeling.fcos.tta import check_original_images, detect_inputs
from fcos_core.structures import BoxList
from fcos_core.structures.boxlist_ops import cat_boxlist

# image uint8[h, w, 3] RGB -> (model input Tensor[3, h', w'], target): the test transforms.
TestTransforms = Callable[[np.ndarray, None], tuple[torch.Tensor, None]]


class Window(NamedTuple):
    """A tile: pixel edges of ``image[y0:y1, x0:x1]`` in the original image."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the tile, as ``BoxList.size``."""
        return self.x1 - self.x0, self.y1 - self.y0


def check_tile_geometry(tile_size: int, overlap: int) -> None:
    """TEST.SLICE.TILE_SIZE > 0 and 0 <= TEST.SLICE.OVERLAP < TILE_SIZE, or a ConfigError."""
    if int(tile_size) != tile_size or tile_size < 1:
        raise ConfigError(f"TEST.SLICE.TILE_SIZE must be a positive integer, got {tile_size!r}")
    if int(overlap) != overlap or not 0 <= overlap < tile_size:
        raise ConfigError(
            f"TEST.SLICE.OVERLAP must be an integer with 0 <= OVERLAP < TILE_SIZE ({tile_size}), "
            f"got {overlap!r}"
        )


def tile_starts(length: int, tile_size: int, overlap: int) -> list[int]:
    """Where the tiles along an axis of ``length`` pixels start.

    Every ``tile_size - overlap`` pixels, the last one moved back to end at the border; one tile
    at 0 when the axis is no longer than a tile.
    """
    check_tile_geometry(tile_size, overlap)
    if length <= tile_size:
        return [0]
    stride = tile_size - overlap
    count = -(-(length - tile_size) // stride) + 1  # ceil: the last start reaches the border
    return [min(i * stride, length - tile_size) for i in range(count)]


def tile_windows(height: int, width: int, tile_size: int, overlap: int) -> list[Window]:
    """The T tiles of an image of ``height`` x ``width`` pixels, row by row."""
    if height < 1 or width < 1:
        raise ValueError(f"TEST.SLICE: cannot tile an empty image of {height} x {width} pixels")
    xs = tile_starts(width, tile_size, overlap)
    ys = tile_starts(height, tile_size, overlap)
    return [
        Window(x, y, min(x + tile_size, width), min(y + tile_size, height)) for y in ys for x in xs
    ]


def shift_detections(detections: BoxList, window: Window, image_size: tuple[int, int]) -> BoxList:
    """Detections of one tile, in the tile's pixels (size ``window.size``), moved into the
    image of ``image_size`` = (width, height); fields "scores" and "labels" kept."""
    if tuple(detections.size) != window.size:
        raise ValueError(
            f"TEST.SLICE: detections of size {tuple(detections.size)} for a tile of size "
            f"{window.size}; resize them to the tile first"
        )
    xyxy = detections.convert("xyxy")
    corner = xyxy.bbox.new_tensor([window.x0, window.y0, window.x0, window.y0])
    return detections_to_boxlist(
        image_size,
        xyxy.bbox + corner,  # (K, 4)
        xyxy.get_field("scores"),
        xyxy.get_field("labels"),
        convention=xyxy.convention,
    )


class SlicedInference:
    """Runs a model on the tiles (and the whole) of original images and merges the detections.

    Args:
        transforms: the test transforms (image in, model input tensor out).
        min_size_test, max_size_test: the test size (frame of the returned detections).
        tile_size, overlap: the tile grid (TEST.SLICE.TILE_SIZE / OVERLAP), original pixels.
        include_full_image: also run the whole image (TEST.SLICE.INCLUDE_FULL_IMAGE).
        tiles_per_batch: tiles per forward pass (TEST.SLICE.TILES_PER_BATCH).
        size_divisibility: padding multiple of the batched inputs.
        nms_thresh: class-aware NMS threshold of the merge. detections_per_img: cap per image.
        detections_per_img_ties: TEST.DETECTIONS_PER_IMG_TIES of that cap ("keep" or "cut").
    """

    def __init__(
        self,
        *,
        transforms: TestTransforms,
        min_size_test: int,
        max_size_test: int,
        tile_size: int,
        overlap: int,
        include_full_image: bool = True,
        tiles_per_batch: int = 8,
        size_divisibility: int = 0,
        nms_thresh: float = 0.6,
        detections_per_img: int = 100,
        detections_per_img_ties: str = "keep",
    ) -> None:
        check_tile_geometry(tile_size, overlap)
        if tiles_per_batch < 1:
            raise ConfigError(f"TEST.SLICE.TILES_PER_BATCH must be >= 1, got {tiles_per_batch}")
        self.transforms = transforms
        self.min_size_test = min_size_test
        self.max_size_test = max_size_test
        self.tile_size = int(tile_size)
        self.overlap = int(overlap)
        self.include_full_image = include_full_image
        self.tiles_per_batch = tiles_per_batch
        self.size_divisibility = size_divisibility
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.detections_per_img_ties = detections_per_img_ties

    @classmethod
    def from_config(cls, cfg: CfgNode) -> SlicedInference:
        """Read TEST.SLICE.*, the test transforms (INPUT.*), DATALOADER.SIZE_DIVISIBILITY and the
        merge keys (MODEL.FCOS.NMS_TH, TEST.DETECTIONS_PER_IMG[_TIES])."""
        check_not_with_bbox_aug(cfg)
        s = cfg.TEST.SLICE
        return cls(
            transforms=build_transforms(cfg, is_train=False),
            min_size_test=cfg.INPUT.MIN_SIZE_TEST,
            max_size_test=cfg.INPUT.MAX_SIZE_TEST,
            tile_size=s.TILE_SIZE,
            overlap=s.OVERLAP,
            include_full_image=s.INCLUDE_FULL_IMAGE,
            tiles_per_batch=s.TILES_PER_BATCH,
            size_divisibility=cfg.DATALOADER.SIZE_DIVISIBILITY,
            nms_thresh=cfg.MODEL.FCOS.NMS_TH,
            detections_per_img=cfg.TEST.DETECTIONS_PER_IMG,
            detections_per_img_ties=cfg.TEST.DETECTIONS_PER_IMG_TIES,
        )

    @torch.no_grad()
    def __call__(
        self, model: nn.Module, images: Sequence[np.ndarray], device: torch.device | str = "cpu"
    ) -> list[BoxList]:
        """Merged detections of N original images (uint8[H, W, 3] RGB), each in the frame of
        plain inference (the image at the test size), fields "scores" and "labels"."""
        check_original_images(images, "TEST.SLICE", "sliced inference")
        results = []
        for image, merged in zip(images, self.detect_batch(model, images, device)):
            height, width = image.shape[:2]
            test_height, test_width = get_size((width, height), self.min_size_test,
                                               self.max_size_test)  # fmt: skip
            results.append(merged.resize((test_width, test_height)))
        return results

    def detect(
        self, model: nn.Module, image: np.ndarray, device: torch.device | str = "cpu"
    ) -> BoxList:
        """Merged detections of one original image, in its own pixels."""
        return self.detect_batch(model, [image], device)[0]

    @torch.no_grad()
    def detect_batch(
        self, model: nn.Module, images: Sequence[np.ndarray], device: torch.device | str = "cpu"
    ) -> list[BoxList]:
        """Merged detections of N original images, each in its own pixels. The tiles of all N
        share forward passes; the whole images (INCLUDE_FULL_IMAGE) run as one batch."""
        parts = self.tile_detections(model, images, device)
        if self.include_full_image:
            for per_image, whole in zip(parts, self.run_model(model, images, device)):
                per_image.append(whole)
        return [
            select_over_all_levels(
                cat_boxlist(per_image),
                self.nms_thresh,
                self.detections_per_img,
                self.detections_per_img_ties,
            )  # fmt: skip
            for per_image in parts
        ]

    def tile_detections(
        self, model: nn.Module, images: Sequence[np.ndarray], device: torch.device | str = "cpu"
    ) -> list[list[BoxList]]:
        """For each of the N images, its T tiles' detections (before the merge) in the image's
        own pixels (size (W, H)); TILES_PER_BATCH tiles, of any of the images, per pass."""
        jobs = [
            (i, window)
            for i, image in enumerate(images)
            for window in tile_windows(*image.shape[:2], self.tile_size, self.overlap)
        ]
        found: list[BoxList] = []
        for start in range(0, len(jobs), self.tiles_per_batch):
            crops = [
                images[i][w.y0 : w.y1, w.x0 : w.x1]
                for i, w in jobs[start : start + self.tiles_per_batch]
            ]
            found += self.run_model(model, crops, device)
        per_image: list[list[BoxList]] = [[] for _ in images]
        for (i, window), detections in zip(jobs, found):
            height, width = images[i].shape[:2]
            per_image[i].append(shift_detections(detections, window, (width, height)))
        return per_image

    def run_model(
        self, model: nn.Module, images: Sequence[np.ndarray], device: torch.device | str
    ) -> list[BoxList]:
        """The model's detections of each image (a tile or a whole image) through the test
        transforms, resized back to that image's own pixels."""
        inputs = [self.transforms(np.ascontiguousarray(image), None)[0] for image in images]
        detections = detect_inputs(model, inputs, self.size_divisibility, device)
        return [d.resize((image.shape[1], image.shape[0])) for d, image in zip(detections, images)]


def check_not_with_bbox_aug(cfg: CfgNode) -> None:
    """TEST.SLICE and TEST.BBOX_AUG together are refused (see the module docstring)."""
    if cfg.TEST.SLICE.ENABLED and cfg.TEST.BBOX_AUG.ENABLED:
        raise ConfigError(
            "TEST.SLICE.ENABLED and TEST.BBOX_AUG.ENABLED cannot both be True: sliced inference "
            "does not run test-time augmentation on its tiles; turn one of them off"
        )


__all__ = [
    "SlicedInference",
    "Window",
    "check_not_with_bbox_aug",
    "check_tile_geometry",
    "shift_detections",
    "tile_starts",
    "tile_windows",
]
