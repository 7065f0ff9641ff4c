"""`BoxList`, `ImageList` and the box convention they carry (shared by data, model, eval)."""

from __future__ import annotations

from fcos_core.structures.bounding_box import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList
from fcos_core.structures.image_list import ImageList, to_image_list

__all__ = ["FLIP_LEFT_RIGHT", "FLIP_TOP_BOTTOM", "BoxList", "ImageList", "to_image_list"]
