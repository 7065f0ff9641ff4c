"""A deterministic stand-in detector for the slicing tests, and images it can read.

``BlobDetector`` finds every 4-connected blob of bright pixels in each un-padded input: one
detection per blob, its bounding box in the given box convention, label 2 when the blob is bright
in all three channels (white) and 1 otherwise (red), score area / (area + 100) in input pixels.
Blobs with a side shorter than ``min_side`` input pixels are missed, as a real detector misses
objects much smaller than its stride. "Bright" is decided against mid-grey pushed through the
same test transforms, so it holds whatever the transforms' normalisation is.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from fcos_core.structures import BoxList, ImageList, to_image_list
from fcos_core.structures.box_convention import box_offset

RED, WHITE = (255, 0, 0), (255, 255, 255)  # RGB; labels 1 and 2
# (x0, y0, x1, y1) pixel edges: the rectangle image[y0:y1, x0:x1]
Rect = tuple[int, int, int, int]


class BlobDetector(nn.Module):
    """Boxes of bright blobs (see the module docstring).

    Args:
        transforms: the test transforms the inputs went through.
        convention: "plus_one" or "continuous".
        min_side: blobs narrower or lower than this (input pixels) are not found.
    """

    def __init__(self, transforms, convention: str, min_side: int = 1) -> None:
        super().__init__()
        grey = transforms(np.full((8, 8, 3), 128, dtype=np.uint8), None)[0]
        self.threshold = grey[:, 0, 0].float()  # (3,)
        self.convention = convention
        self.min_side = min_side
        self.input_sizes: list[tuple[int, int]] = []

    def forward(self, images: ImageList | list[torch.Tensor]) -> list[BoxList]:
        images = to_image_list(images)
        return [
            self.detect(tensor[:, :h, :w])
            for tensor, (h, w) in zip(images.tensors, images.image_sizes)
        ]

    def detect(self, tensor: torch.Tensor) -> BoxList:
        height, width = tensor.shape[1:]
        self.input_sizes.append((height, width))
        bright = tensor.float() > self.threshold[:, None, None]  # (3, h, w)
        mask = bright.any(dim=0).numpy().astype(np.uint8)
        count, components, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        boxes, scores, labels = [], [], []
        for k in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[k])
            if min(w, h) < self.min_side:
                continue
            inside = torch.from_numpy(components == k)
            white = bool(bright[:, inside].all())
            boxes.append(rect_to_box((x, y, x + w, y + h), self.convention))
            scores.append(area / (area + 100.0))
            labels.append(2 if white else 1)
        det = BoxList(torch.tensor(boxes).reshape(-1, 4), (width, height), "xyxy", self.convention)
        det.add_field("scores", torch.tensor(scores, dtype=torch.float32))
        det.add_field("labels", torch.tensor(labels, dtype=torch.int64))
        return det


def rect_to_box(rect: Rect, convention: str) -> list[float]:
    """xyxy box of the pixels ``image[y0:y1, x0:x1]`` in ``convention``."""
    off = box_offset(convention)
    x0, y0, x1, y1 = rect
    return [float(x0), float(y0), x1 - off, y1 - off]


def draw(height: int, width: int, rects: Sequence[Rect], colors: Sequence[tuple]) -> np.ndarray:
    """uint8[height, width, 3] RGB: black with solid coloured rectangles."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    for (x0, y0, x1, y1), color in zip(rects, colors):
        image[y0:y1, x0:x1] = color
    return image


def scatter_rects(
    height: int, width: int, count: int, sides: tuple[int, int], seed: int = 0
) -> list[Rect]:
    """``count`` rectangles with sides in [sides[0], sides[1]], at least 2 px apart."""
    rng = np.random.default_rng(seed)
    rects: list[Rect] = []
    while len(rects) < count:
        w, h = (int(v) for v in rng.integers(sides[0], sides[1] + 1, 2))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        new = (x, y, x + w, y + h)
        if all(_apart(new, r, 2) for r in rects):
            rects.append(new)
    return rects


def _apart(a: Rect, b: Rect, gap: int) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def box_set(det: BoxList) -> set[tuple]:
    """{(x1, y1, x2, y2, label)} of a BoxList, for exact comparisons."""
    rows = det.convert("xyxy").bbox.tolist()
    labels = det.get_field("labels").tolist()
    return {(*map(float, b), int(k)) for b, k in zip(rows, labels)}
