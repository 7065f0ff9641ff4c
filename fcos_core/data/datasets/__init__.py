"""Detection datasets: COCO json, Pascal VOC, concatenation, and the synthetic shapes generator."""

from __future__ import annotations

from fcos_core.data.datasets.coco import COCODataset
from fcos_core.data.datasets.concat_dataset import ConcatDataset
from fcos_core.data.datasets.image_io import ImageReadError, read_image
from fcos_core.data.datasets.voc import PascalVOCDataset

__all__ = ["COCODataset", "ConcatDataset", "ImageReadError", "PascalVOCDataset", "read_image"]
