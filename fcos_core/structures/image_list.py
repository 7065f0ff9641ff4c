"""`ImageList`: a padded batch of images that remembers each image's own size.

Dimension key: N images, C channels, H/W padded height/width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class ImageList:
    """Images of different sizes padded into one tensor.

    Args:
        tensors (Tensor[N, C, H, W]): the padded batch (zero padding at the bottom/right):
            uint8 RGB 0..255 from the data pipeline (the model normalises it on its device),
            or floating point, already normalised.
        image_sizes: per image, its (height, width) before padding.
    """

    def __init__(self, tensors: Tensor, image_sizes: list[tuple[int, int]]) -> None:
        self.tensors = tensors
        self.image_sizes = [(int(h), int(w)) for h, w in image_sizes]

    def to(self, device: torch.device | str, **kwargs) -> ImageList:
        """The batch on ``device`` (kwargs such as ``non_blocking`` go to ``Tensor.to``)."""
        return ImageList(self.tensors.to(device, **kwargs), self.image_sizes)

    def pin_memory(self) -> ImageList:
        """Page-locked copy (the DataLoader's pin_memory=True calls this)."""
        return ImageList(self.tensors.pin_memory(), self.image_sizes)

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __repr__(self) -> str:
        return f"ImageList(tensors={tuple(self.tensors.shape)}, image_sizes={self.image_sizes})"


def to_image_list(
    tensors: ImageList | Tensor | Sequence[Tensor], size_divisible: int = 0
) -> ImageList:
    """Batch images into an `ImageList`.

    Args:
        tensors: an ImageList (returned as is), a Tensor[C, H, W] or Tensor[N, C, H, W], or a
            sequence of Tensor[C, H_i, W_i] of one dtype (padding is 0 in that dtype).
        size_divisible: pad H and W up to multiples of this (0: no rounding).

    Returns:
        ImageList whose tensors are Tensor[N, C, H, W].
    """
    if isinstance(tensors, ImageList):
        return tensors
    if isinstance(tensors, Tensor) and tensors.ndim == 3:
        tensors = tensors[None]
    if isinstance(tensors, Tensor) and size_divisible <= 0:
        sizes = [tuple(tensors.shape[-2:])] * tensors.shape[0]
        return ImageList(tensors, sizes)
    if not isinstance(tensors, (Tensor, list, tuple)):
        raise TypeError(f"to_image_list expects a Tensor or a list of Tensors, got {type(tensors)}")
    images = list(tensors)
    if not images:
        raise ValueError("to_image_list got an empty list of images")
    for i, img in enumerate(images):
        if img.ndim != 3:
            raise ValueError(f"image {i} must have shape (C, H, W), got {tuple(img.shape)}")
        if img.dtype != images[0].dtype:
            raise TypeError(
                f"to_image_list: all images need one dtype, image 0 is {images[0].dtype} and "
                f"image {i} is {img.dtype}"
            )
    channels = images[0].shape[0]
    max_h = max(int(img.shape[1]) for img in images)
    max_w = max(int(img.shape[2]) for img in images)
    if size_divisible > 0:
        max_h = int(math.ceil(max_h / size_divisible) * size_divisible)
        max_w = int(math.ceil(max_w / size_divisible) * size_divisible)
    batched = images[0].new_zeros((len(images), channels, max_h, max_w))
    for img, pad in zip(images, batched):
        pad[:, : img.shape[1], : img.shape[2]].copy_(img)
    return ImageList(batched, [(int(img.shape[1]), int(img.shape[2])) for img in images])
