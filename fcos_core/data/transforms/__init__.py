"""Image + BoxList transforms; random ones draw from an explicit numpy Generator."""

from __future__ import annotations

from fcos_core.data.transforms.build import build_transforms
from fcos_core.data.transforms.transforms import (
    PIXEL_RANGE,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    Resize,
    ToTensor,
    ToUint8Tensor,
    get_size,
    normalization_affine,
)

__all__ = [
    "PIXEL_RANGE",
    "Compose",
    "Normalize",
    "RandomHorizontalFlip",
    "Resize",
    "ToTensor",
    "ToUint8Tensor",
    "build_transforms",
    "get_size",
    "normalization_affine",
]
