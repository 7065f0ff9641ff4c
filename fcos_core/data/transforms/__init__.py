"""Image + BoxList transforms; random ones draw from an explicit numpy Generator."""

from __future__ import annotations

from fcos_core.data.transforms.build import build_transforms
from fcos_core.data.transforms.transforms import (
    Compose,
    Normalize,
    RandomHorizontalFlip,
    Resize,
    ToTensor,
    get_size,
)

__all__ = [
    "Compose",
    "Normalize",
    "RandomHorizontalFlip",
    "Resize",
    "ToTensor",
    "build_transforms",
    "get_size",
]
