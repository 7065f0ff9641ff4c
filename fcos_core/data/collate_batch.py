"""`BatchCollator`: a list of dataset items -> (ImageList, targets, ids); `BBoxAugCollator`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fcos_core.structures.image_list import ImageList, to_image_list


class BatchCollator:
    """Pad the images of a batch into one `ImageList`; keep targets and ids as tuples.

    Args:
        size_divisible: pad height and width up to multiples of this (DATALOADER.SIZE_DIVISIBILITY).
    """

    def __init__(self, size_divisible: int = 0) -> None:
        self.size_divisible = size_divisible

    def __call__(self, batch: Sequence[tuple[Any, Any, int]]) -> tuple[ImageList, tuple, tuple]:
        images, targets, ids = zip(*batch)
        return to_image_list(list(images), self.size_divisible), tuple(targets), tuple(ids)


class BBoxAugCollator:
    """Keep the untransformed images of a batch as they are (TEST.BBOX_AUG).

    Test-time augmentation transforms each original image once per pass itself, so the test
    loader yields (images, targets, ids) tuples with the dataset's raw images.
    """

    def __call__(self, batch: Sequence[tuple[Any, Any, int]]) -> tuple[tuple, tuple, tuple]:
        images, targets, ids = zip(*batch)
        return tuple(images), tuple(targets), tuple(ids)
