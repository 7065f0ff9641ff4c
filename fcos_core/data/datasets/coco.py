"""`COCODataset`: COCO-format json + an image folder (COCO itself, or any custom data)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO

from fcos_core.data.datasets.base import DetectionDataset
from fcos_core.data.datasets.coco_json import index_coco_json
from fcos_core.structures.box_convention import (
    DEFAULT_BOX_CONVENTION,
    check_box_convention,
    from_pixel_edges,
)
from fcos_core.structures.bounding_box import BoxList

logger = logging.getLogger(__name__)


class COCODataset(DetectionDataset):
    """Detection dataset from a COCO json.

    Json category ids (possibly non-contiguous, e.g. COCO's 1..90 with gaps) are mapped to
    contiguous labels 1..C in increasing id order; `contiguous_category_id_to_json_id` maps back.
    Crowd boxes are not used as targets (they stay in `coco` for evaluation). Unusable boxes are
    dropped and boxes past the border clipped, with warnings (see `coco_json`).

    Args:
        ann_file: the json file.
        root: folder the images' `file_name`s are relative to.
        remove_images_without_annotations: drop images with no usable box (training); keep all
            images for testing.
        transforms: callable (image, target, rng) -> (image, target).
        skip_bad_images: replace unreadable images by others instead of raising (training).
        name: dataset name for messages (default: the json file name).
        box_convention: MODEL.BOX_CONVENTION of the targets: "plus_one" turns a json
            [x, y, w, h] into [x, y, x + w - 1, y + h - 1] (boxes <= 1 px wide or high are then
            empty and dropped, as the original), "continuous" into [x, y, x + w, y + h].

    Attributes:
        coco: pycocotools COCO of the checked json (unusable annotations removed).
        ids: image id of each dataset index.
        id_to_img_map: dataset index -> image id.
        json_category_id_to_contiguous_id / contiguous_category_id_to_json_id: label maps.
        categories: json category id -> name.
        class_names: names of labels 1..C in order.
    """

    def __init__(
        self,
        ann_file: str,
        root: str,
        remove_images_without_annotations: bool,
        transforms: Any = None,
        skip_bad_images: bool = False,
        name: str | None = None,
        box_convention: str = DEFAULT_BOX_CONVENTION,
    ) -> None:
        super().__init__(transforms=transforms, skip_bad_images=skip_bad_images)
        self.box_convention = check_box_convention(box_convention)
        self.name = name or os.path.basename(ann_file)
        self.ann_file = ann_file
        self.root = root
        index = index_coco_json(ann_file, require_annotations=remove_images_without_annotations)
        self.coco = COCO()
        self.coco.dataset = index.clean_json
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            self.coco.createIndex()
        self.categories = index.categories
        self.json_category_id_to_contiguous_id = {
            json_id: label for label, json_id in enumerate(index.categories, start=1)
        }
        self.contiguous_category_id_to_json_id = {
            label: json_id for json_id, label in self.json_category_id_to_contiguous_id.items()
        }
        self.class_names = tuple(index.categories.values())
        self._images = index.images
        self._boxes = index.boxes
        to_label = self.json_category_id_to_contiguous_id
        self._labels = {  # numpy, not tensors: far less per-object overhead for 100k+ images
            image_id: np.asarray([to_label[int(c)] for c in cat_ids], dtype=np.int64)
            for image_id, cat_ids in index.category_ids.items()
        }
        self.ids = self._select_images(remove_images_without_annotations)
        self.id_to_img_map = dict(enumerate(self.ids))

    def _select_images(self, remove_images_without_annotations: bool) -> list[int]:
        ids = list(self._images)
        if not ids:
            raise ValueError(f"dataset {self.name}: {self.ann_file} contains no images")
        if remove_images_without_annotations:
            ids = [image_id for image_id in ids if len(self._boxes[image_id]) > 0]
            if not ids:
                raise ValueError(
                    f"dataset {self.name}: none of the {len(self._images)} images in "
                    f"{self.ann_file} has a usable (non-crowd, non-empty) box; nothing to train on"
                )
            removed = len(self._images) - len(ids)
            if removed:
                logger.info(
                    "%s: %d images without usable boxes are not used for training",
                    self.name,
                    removed,
                )
        return ids

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> str:
        return os.path.join(self.root, self._images[self.ids[index]]["file_name"])

    def get_img_info(self, index: int) -> dict[str, Any]:
        return self._images[self.ids[index]]

    def get_groundtruth(self, index: int) -> BoxList:
        """Non-crowd usable boxes of `index` in the original image frame, field "labels"."""
        image_id = self.ids[index]
        image = self._images[image_id]
        boxes = from_pixel_edges(torch.from_numpy(self._boxes[image_id]), self.box_convention)
        target = BoxList(
            boxes, (image["width"], image["height"]), "xyxy", convention=self.box_convention
        )
        target.add_field("labels", torch.from_numpy(self._labels[image_id].copy()))
        return target.clip_to_image(remove_empty=True)

    def __repr__(self) -> str:
        return (
            f"COCODataset(name={self.name!r}, images={len(self)}, classes={len(self.class_names)})"
        )
