"""`DetectionDataset`: what COCO and VOC datasets share.

Item protocol (see samplers.SeededBatchSampler): `dataset[index]` or `dataset[(index, aug_seed)]`
returns `(image Tensor[3, H, W], target BoxList, index)`. All random augmentation of the item is
drawn from `numpy.random.default_rng(aug_seed)`; a plain `index` uses `default_rng(index)`, so an
item is always a pure function of its key.

Bad images: reading raises `FileNotFoundError` / `ImageReadError` naming the file and image id.
With `skip_bad_images` (training), the item is replaced by another index drawn deterministically
from the key, with a warning, instead of failing the run.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from fcos_core.data.datasets.image_io import ImageReadError, read_image
from fcos_core.data.samplers.seeding import derive_seed
from fcos_core.structures.bounding_box import BoxList

logger = logging.getLogger(__name__)

# How many substitutes are tried for one bad item before giving up.
MAX_BAD_IMAGE_SUBSTITUTES = 10


def split_item(item: Any) -> tuple[int, int | None]:
    """`index` or `(index, aug_seed)` -> (index, aug_seed or None)."""
    if isinstance(item, (tuple, list)):
        if len(item) != 2:
            raise TypeError(f"dataset item must be an index or (index, aug_seed), got {item!r}")
        return int(item[0]), int(item[1])
    return int(item), None


class DetectionDataset(torch.utils.data.Dataset):
    """Base class; subclasses set `class_names`, `name` and implement the abstract methods.

    Args:
        transforms: callable (image, target, rng) -> (image, target), or None (raw array out).
        skip_bad_images: replace unreadable images by others (training) instead of raising.
    """

    class_names: tuple[str, ...] = ()
    name: str = ""

    def __init__(self, transforms: Any = None, skip_bad_images: bool = False) -> None:
        self.transforms = transforms
        self.skip_bad_images = skip_bad_images
        self._reported_bad: set[int] = set()

    # ---------------------------------------------------------------- subclass API
    def __len__(self) -> int:
        raise NotImplementedError

    def image_path(self, index: int) -> str:
        """Path of the image file of dataset index `index`."""
        raise NotImplementedError

    def get_img_info(self, index: int) -> dict[str, Any]:
        """{"height", "width", "id", ...} of dataset index `index` (from the annotations)."""
        raise NotImplementedError

    def get_groundtruth(self, index: int) -> BoxList:
        """BoxList in the original image frame with field "labels" (contiguous ids 1..C)."""
        raise NotImplementedError

    # ------------------------------------------------------------------- loading
    def load_image(self, index: int) -> np.ndarray:
        """uint8[H, W, 3] RGB image of `index`, checked against the annotated size."""
        info = self.get_img_info(index)
        path = self.image_path(index)
        image = read_image(path, info.get("id"))
        height, width = image.shape[:2]
        if (height, width) != (info["height"], info["width"]):
            raise ImageReadError(
                f"{path} (image id {info.get('id')}): decoded image is {width}x{height} but the "
                f"annotations say {info['width']}x{info['height']}"
            )
        return image

    def _load_item(self, index: int, aug_seed: int) -> tuple[Any, BoxList, int]:
        image = self.load_image(index)
        target = self.get_groundtruth(index)
        if self.transforms is not None:
            rng = np.random.default_rng(aug_seed)
            image, target = self.transforms(image, target, rng)
        return image, target, index

    def __getitem__(self, item: Any) -> tuple[Any, BoxList, int]:
        index, aug_seed = split_item(item)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(
                f"index {index} out of range for {self.name or 'dataset'} of {len(self)}"
            )
        if aug_seed is None:
            aug_seed = index
        attempt = 0
        while True:
            try:
                return self._load_item(index, aug_seed)
            except OSError as err:
                if not self.skip_bad_images or attempt >= MAX_BAD_IMAGE_SUBSTITUTES:
                    raise
                index = self._substitute(index, aug_seed, attempt, err)
                attempt += 1

    def _substitute(self, index: int, aug_seed: int, attempt: int, err: OSError) -> int:
        """Deterministic replacement for a bad index; warns once per bad index per process."""
        substitute = int(np.random.default_rng(derive_seed(aug_seed, attempt)).integers(len(self)))
        log = logger.warning if index not in self._reported_bad else logger.debug
        self._reported_bad.add(index)
        log(
            "skipping bad image in %s: %s; using dataset index %d instead",
            self.name,
            err,
            substitute,
        )
        return substitute
