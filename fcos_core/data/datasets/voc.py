"""`PascalVOCDataset`: VOC-style folders (Annotations/*.xml, JPEGImages/*.jpg, ImageSets/Main)."""

from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

import numpy as np
import torch

from fcos_core.data.datasets.base import DetectionDataset
from fcos_core.structures.box_convention import (
    DEFAULT_BOX_CONVENTION,
    check_box_convention,
    from_pixel_edges,
)
from fcos_core.structures.bounding_box import BoxList

logger = logging.getLogger(__name__)

# Number of cases listed in one warning.
MAX_LISTED = 5


def _parse_box(obj: ET.Element) -> list[float] | None:
    """VOC bndbox (1-based, inclusive pixels) -> continuous [xmin - 1, ymin - 1, xmax, ymax]."""
    bndbox = obj.find("bndbox")
    if bndbox is None:
        return None
    try:
        xmin, ymin, xmax, ymax = (
            float(bndbox.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax")
        )
    except ValueError:
        return None
    box = [xmin - 1.0, ymin - 1.0, xmax, ymax]
    if not all(math.isfinite(v) for v in box):
        return None
    return box


class PascalVOCDataset(DetectionDataset):
    """Pascal VOC detection dataset.

    Args:
        data_dir: the VOC year folder (holding Annotations, JPEGImages, ImageSets/Main).
        split: image-set name, e.g. "train", "val", "trainval", "test".
        use_difficult: keep objects marked difficult (True for evaluation).
        transforms: callable (image, target, rng) -> (image, target).
        classes: class names (default: the 20 VOC classes); labels are 1..len(classes).
        remove_images_without_annotations: drop images without usable boxes (training).
        skip_bad_images: replace unreadable images by others instead of raising (training).
        name: dataset name for messages.
        box_convention: MODEL.BOX_CONVENTION of the targets: "plus_one" keeps VOC's pixel
            indices made 0-based, [xmin - 1, ymin - 1, xmax - 1, ymax - 1], as the original;
            "continuous" gives pixel edges, [xmin - 1, ymin - 1, xmax, ymax].
    """

    CLASSES = (
        "__background__",
        "aeroplane",
        "bicycle",
        "bird",
        "boat",
        "bottle",
        "bus",
        "car",
        "cat",
        "chair",
        "cow",
        "diningtable",
        "dog",
        "horse",
        "motorbike",
        "person",
        "pottedplant",
        "sheep",
        "sofa",
        "train",
        "tvmonitor",
    )

    def __init__(
        self,
        data_dir: str,
        split: str,
        use_difficult: bool = False,
        transforms: Any = None,
        classes: tuple[str, ...] | None = None,
        remove_images_without_annotations: bool = False,
        skip_bad_images: bool = False,
        name: str | None = None,
        box_convention: str = DEFAULT_BOX_CONVENTION,
    ) -> None:
        super().__init__(transforms=transforms, skip_bad_images=skip_bad_images)
        self.box_convention = check_box_convention(box_convention)
        self.root = data_dir
        self.split = split
        self.name = name or f"{os.path.basename(os.path.normpath(data_dir))}_{split}"
        self.keep_difficult = use_difficult
        self.class_names = tuple(classes) if classes is not None else self.CLASSES[1:]
        self.class_to_ind = {name: i for i, name in enumerate(self.class_names, start=1)}
        ids = self._read_split()
        self._records = {image_id: self._parse_xml(image_id) for image_id in ids}
        self._log_dropped()
        if remove_images_without_annotations:
            ids = [i for i in ids if len(self._records[i]["boxes"]) > 0]
            if not ids:
                raise ValueError(f"dataset {self.name}: no image of split {split} has a usable box")
        self.ids = ids
        self.id_to_img_map = dict(enumerate(ids))

    def _read_split(self) -> list[str]:
        path = os.path.join(self.root, "ImageSets", "Main", f"{self.split}.txt")
        try:
            with open(path, encoding="utf-8") as f:
                ids = [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            raise FileNotFoundError(f"VOC image set not found: {path}") from None
        if not ids:
            raise ValueError(f"dataset {self.name}: image set {path} lists no images")
        if len(set(ids)) != len(ids):
            dup = sorted(i for i, n in Counter(ids).items() if n > 1)[:MAX_LISTED]
            raise ValueError(f"{path}: duplicate image ids {dup}")
        return ids

    def _parse_xml(self, image_id: str) -> dict[str, Any]:
        path = os.path.join(self.root, "Annotations", f"{image_id}.xml")
        try:
            root = ET.parse(path).getroot()
            width = int(root.findtext("size/width", "0"))
            height = int(root.findtext("size/height", "0"))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"VOC annotation not found: {path} (image id {image_id})"
            ) from None
        except (ET.ParseError, ValueError) as err:
            raise ValueError(
                f"VOC annotation {path} (image id {image_id}) is not valid: {err}"
            ) from None
        if width <= 0 or height <= 0:
            raise ValueError(f"VOC annotation {path} (image id {image_id}) has no valid <size>")
        boxes, labels, difficult, dropped = self._parse_objects(root, path, width, height)
        return {
            "id": image_id,
            "width": width,
            "height": height,
            "dropped": dropped,
            "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            "labels": np.asarray(labels, dtype=np.int64),
            "difficult": np.asarray(difficult, dtype=bool),
        }

    def _parse_objects(self, root: ET.Element, path: str, width: int, height: int) -> tuple:
        boxes, labels, difficult, dropped = [], [], [], []
        for k, obj in enumerate(root.iter("object")):
            is_difficult = int(obj.findtext("difficult", "0") or 0) == 1
            if is_difficult and not self.keep_difficult:
                continue
            name = (obj.findtext("name") or "").strip()
            if name not in self.class_to_ind:
                raise ValueError(
                    f"{path}: object #{k} has class {name!r}, not one of {list(self.class_names)}"
                )
            box = _parse_box(obj)
            if box is not None:
                box = [max(box[0], 0.0), max(box[1], 0.0), min(box[2], width), min(box[3], height)]
            if box is None or box[2] <= box[0] or box[3] <= box[1]:
                dropped.append(f"{path} object #{k} ({name})")
                continue
            boxes.append(box)
            labels.append(self.class_to_ind[name])
            difficult.append(is_difficult)
        return boxes, labels, difficult, dropped

    def _log_dropped(self) -> None:
        dropped = [case for rec in self._records.values() for case in rec["dropped"]]
        if dropped:
            listed = "; ".join(dropped[:MAX_LISTED]) + (
                "; ..." if len(dropped) > MAX_LISTED else ""
            )
            logger.warning(
                "%s: dropped %d object(s) with missing, empty or out-of-image boxes: %s",
                self.name,
                len(dropped),
                listed,
            )

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> str:
        return os.path.join(self.root, "JPEGImages", f"{self.ids[index]}.jpg")

    def get_img_info(self, index: int) -> dict[str, Any]:
        rec = self._records[self.ids[index]]
        return {"id": rec["id"], "width": rec["width"], "height": rec["height"]}

    def get_groundtruth(self, index: int) -> BoxList:
        """Boxes in the original image frame with fields "labels" and "difficult"."""
        rec = self._records[self.ids[index]]
        boxes = from_pixel_edges(torch.from_numpy(rec["boxes"]), self.box_convention)
        target = BoxList(
            boxes, (rec["width"], rec["height"]), "xyxy", convention=self.box_convention
        )
        target.add_field("labels", torch.from_numpy(rec["labels"].copy()))
        target.add_field("difficult", torch.from_numpy(rec["difficult"].copy()))
        return target.clip_to_image(remove_empty=True)

    def map_class_id_to_class_name(self, class_id: int) -> str:
        """Label 1..C -> class name."""
        return self.class_names[class_id - 1]

    def __repr__(self) -> str:
        classes = len(self.class_names)
        return f"PascalVOCDataset(name={self.name!r}, images={len(self)}, classes={classes})"
