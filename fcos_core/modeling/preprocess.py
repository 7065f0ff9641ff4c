"""The model's input preprocessing: uint8 batches are normalised on the model's device, once.

Dimension key: N images, H x W padded batch size, h_i x w_i image i's size before padding.

The data pipeline (`fcos_core.data.transforms.build_transforms`) ships uint8 images, RGB 0..255,
zero-padded into an `ImageList` by the collator. `ImagePreprocessor` turns such a batch into what
the backbone expects, with INPUT.PIXEL_MEAN / PIXEL_STD / TO_BGR255, computing exactly what the
original pipeline computed in its workers (ToTensor, Normalize, then zero padding): the same
float32 operations in the same order, so the normalised batch is bit-identical on the CPU.

Input rule, by dtype of ``ImageList.tensors``:

- ``torch.uint8``: RGB 0..255, zero padding -> normalised here; the padding is set back to 0
  (the original padded *normalised* images with zeros, and the head sees those zeros).
- floating point: already normalised (the original pipeline's output, user code calling
  ``model(images)`` with normalised floats) -> passed through unchanged.
- anything else: ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.data.transforms import PIXEL_RANGE, normalization_affine
from fcos_core.structures.image_list import ImageList

# Channel dimension of Tensor[..., 3, H, W].
CHANNEL_DIM = -3


class ImagePreprocessor(nn.Module):
    """Normalises uint8 RGB batches (TO_BGR255 channel swap, PIXEL_MEAN / PIXEL_STD).

    The constants are non-persistent buffers: they follow the model to its device (and dtype)
    but are not in its state dict, so checkpoints keep the original's keys.

    Args:
        pixel_mean, pixel_std: per channel, in the order and scale set by ``to_bgr255``.
        to_bgr255: Caffe2 / Detectron weights: BGR 0..255; otherwise RGB [0, 1] (torchvision).
    """

    def __init__(
        self, *, pixel_mean: Sequence[float], pixel_std: Sequence[float], to_bgr255: bool
    ) -> None:
        super().__init__()
        scale, shift = normalization_affine(pixel_mean, pixel_std, to_bgr255)
        # A device tensor, not a Python number: CUDA divides by a host scalar through its
        # reciprocal, which would round differently from ToTensor's division.
        self.register_buffer("pixel_range", torch.full((1,), PIXEL_RANGE), persistent=False)
        self.register_buffer("scale", scale, persistent=False)  # (3, 1, 1)
        self.register_buffer("shift", shift, persistent=False)  # (3, 1, 1)
        self.to_bgr255 = to_bgr255

    @classmethod
    def from_config(cls, cfg: CfgNode) -> ImagePreprocessor:
        """INPUT.PIXEL_MEAN, INPUT.PIXEL_STD, INPUT.TO_BGR255."""
        return cls(
            pixel_mean=tuple(cfg.INPUT.PIXEL_MEAN),
            pixel_std=tuple(cfg.INPUT.PIXEL_STD),
            to_bgr255=bool(cfg.INPUT.TO_BGR255),
        )

    def normalize(self, images: Tensor) -> Tensor:
        """Every pixel of uint8 Tensor[N, 3, H, W] (RGB 0..255) -> normalised float Tensor.

        Padding is not special here (see `forward`). The memory format is kept.
        """
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[CHANNEL_DIM] != 3:
            raise TypeError(
                "ImagePreprocessor.normalize expects uint8 Tensor[N, 3, H, W] (RGB 0..255), "
                f"got {images.dtype} {list(images.shape)}"
            )
        x = images.flip(CHANNEL_DIM) if self.to_bgr255 else images  # RGB -> BGR, in uint8
        x = x.to(self.scale.dtype)  # (N, 3, H, W), a fresh tensor: in place from here on
        return x.div_(self.pixel_range).mul_(self.scale).add_(self.shift)

    def forward(self, images: ImageList) -> ImageList:
        """The batch the backbone takes (see the module docstring for the dtype rule).

        Args:
            images: ImageList whose tensors are uint8 Tensor[N, 3, H, W] zero-padded at the
                bottom / right, or a floating-point batch that is already normalised.

        Returns:
            ImageList of float Tensor[N, 3, H, W], normalised, padding 0; same image_sizes.
        """
        tensors = images.tensors
        if tensors.is_floating_point():
            return images
        if tensors.dtype != torch.uint8:
            raise TypeError(
                "the model takes uint8 images (RGB 0..255, normalised on its device) or "
                f"floating-point images that are already normalised, got {tensors.dtype}"
            )
        normalized = self.normalize(tensors)
        zero_padding_(normalized, images.image_sizes)
        return ImageList(normalized, images.image_sizes)

    def extra_repr(self) -> str:
        return f"to_bgr255={self.to_bgr255}"


def zero_padding_(batch: Tensor, image_sizes: Sequence[tuple[int, int]]) -> Tensor:
    """Set everything outside image i's (h_i, w_i) top-left region of batch[i] to 0, in place.

    At most two fills per padded image, from sizes known on the host (no device sync).

    Args:
        batch: Tensor[N, C, H, W].
        image_sizes: N (h_i, w_i).
    """
    height, width = batch.shape[-2:]
    for image, (h, w) in zip(batch, image_sizes):
        if h < height:
            image[:, h:, :].fill_(0)
        if w < width:
            image[:, :h, w:].fill_(0)
    return batch
