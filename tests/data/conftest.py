"""Fixtures for the data tests: tiny COCO-json datasets written into tmp_path."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest


class CocoWriter:
    """Writes images and a COCO json under a folder; tests then break things on purpose."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.image_dir = os.path.join(root, "images")
        os.makedirs(self.image_dir, exist_ok=True)
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.categories = [
            {"id": 3, "name": "cat"},
            {"id": 7, "name": "dog"},
            {"id": 10, "name": "cow"},
        ]

    def add_image(self, image_id, width=64, height=48, file_name=None, pixels=None, boxes=()):
        """Add an image (random pixels unless given) and boxes [(x, y, w, h, category[, crowd])]."""
        file_name = file_name or f"{image_id:04d}.jpg"
        if pixels is None:
            pixels = np.random.default_rng(image_id).integers(
                0, 255, (height, width, 3), dtype=np.uint8
            )
        cv2.imwrite(os.path.join(self.image_dir, file_name), pixels)
        self.images.append(
            {"id": image_id, "file_name": file_name, "width": width, "height": height}
        )
        for box in boxes:
            self.add_annotation(
                image_id, list(box[:4]), box[4], crowd=box[5] if len(box) > 5 else 0
            )
        return os.path.join(self.image_dir, file_name)

    def add_annotation(self, image_id, bbox, category_id, crowd=0, ann_id=None):
        ann_id = ann_id if ann_id is not None else 100 + len(self.annotations)
        area = bbox[2] * bbox[3] if len(bbox) == 4 else 0
        self.annotations.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": category_id,
                "bbox": bbox,
                "area": area,
                "iscrowd": crowd,
            }
        )
        return ann_id

    def write(self, name="ann.json", drop_keys=()):
        data = {
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }
        for key in drop_keys:
            data.pop(key)
        path = os.path.join(self.root, name)
        with open(path, "w") as f:
            json.dump(data, f, allow_nan=True)
        return path


@pytest.fixture
def coco_writer(tmp_path):
    return CocoWriter(str(tmp_path))
