"""Loading and checking COCO-format json, with errors that name the file and the offending id.

Fatal (ValueError / FileNotFoundError): missing file, not JSON, missing `images` / `categories`
(or `annotations` when annotations are required), duplicate image / annotation / category ids,
an annotation whose image id or category id is not declared.
Recoverable (dropped or clipped, with one warning per file listing the first few cases): boxes
with zero or negative size or non-finite values, boxes wholly outside their image, boxes extending
past the image border by more than `CLIP_WARN_PX`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Boxes exceeding the image by less than this are clipped silently (float rounding in COCO).
CLIP_WARN_PX = 1.0
# Number of cases listed in one warning.
MAX_LISTED = 5


def load_json(path: str) -> dict[str, Any]:
    """Read a json file that must hold an object; errors name the file and the parse position."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"annotation file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"annotation file {path}: expected a JSON object, got {type(data).__name__}"
        )
    return data


def _unique_ids(entries: list[dict], kind: str, path: str) -> dict[int, dict]:
    by_id: dict[int, dict] = {}
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry:
            raise ValueError(f"{path}: {kind} entry #{position} has no 'id': {entry!r:.200}")
        if entry["id"] in by_id:
            raise ValueError(f"{path}: duplicate {kind} id {entry['id']} (entry #{position})")
        by_id[entry["id"]] = entry
    return by_id


def _check_images(images: dict[int, dict], path: str) -> None:
    for image_id, image in images.items():
        for key in ("file_name", "width", "height"):
            if key not in image:
                raise ValueError(f"{path}: image id {image_id} has no '{key}'")
        if not (image["width"] > 0 and image["height"] > 0):
            raise ValueError(
                f"{path}: image id {image_id} has size {image['width']}x{image['height']}"
            )


def _describe(ann: dict, image: dict | None = None) -> str:
    text = f"annotation id {ann['id']} (image id {ann['image_id']}) bbox {ann.get('bbox')}"
    return text if image is None else text + f" in a {image['width']}x{image['height']} image"


@dataclass
class _Report:
    """Dropped / clipped annotations of one file (with their images), turned into warnings."""

    dropped: list[tuple[dict, None]] = field(default_factory=list)
    outside: list[tuple[dict, dict]] = field(default_factory=list)
    clipped: list[tuple[dict, dict]] = field(default_factory=list)

    def log(self, path: str) -> None:
        for cases, what in (
            (self.dropped, "dropped {n} annotation(s) with zero/negative size or non-finite bbox"),
            (self.outside, "dropped {n} annotation(s) lying wholly outside their image"),
            (self.clipped, "clipped {n} annotation(s) extending past their image border"),
        ):
            if cases:
                listed = "; ".join(_describe(ann, image) for ann, image in cases[:MAX_LISTED])
                more = "; ..." if len(cases) > MAX_LISTED else ""
                logger.warning("%s: %s: %s%s", path, what.format(n=len(cases)), listed, more)


def _xywh(ann: dict) -> tuple[float, float, float, float] | None:
    """The bbox as 4 finite floats with positive width and height, else None."""
    bbox = ann.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return None
    try:
        x, y, w, h = float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])
    except (TypeError, ValueError):
        return None
    if not (w > 0 and h > 0 and math.isfinite(x + y + w + h)):  # NaN fails every comparison
        return None
    return x, y, w, h


def _clip_box(ann: dict, image: dict, report: _Report) -> list[float] | None:
    """xyxy box of `ann` clipped to its image, or None when the box is unusable."""
    xywh = _xywh(ann)
    if xywh is None:
        report.dropped.append((ann, None))
        return None
    x, y, w, h = xywh
    width, height = float(image["width"]), float(image["height"])
    x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
    if x2 <= x1 or y2 <= y1:
        report.outside.append((ann, image))
        return None
    if max(-x, -y, x + w - width, y + h - height) > CLIP_WARN_PX:
        report.clipped.append((ann, image))
    return [x1, y1, x2, y2]


@dataclass
class CocoIndex:
    """A checked COCO json.

    Attributes:
        images: image id -> image entry, ids sorted.
        categories: category id -> name, ids sorted.
        boxes: image id -> float32[K, 4] xyxy boxes (clipped, non-crowd, usable).
        category_ids: image id -> int64[K] json category ids of those boxes.
        clean_json: the json with unusable annotations removed (for pycocotools / evaluation).
    """

    images: dict[int, dict]
    categories: dict[int, str]
    boxes: dict[int, np.ndarray]
    category_ids: dict[int, np.ndarray]
    clean_json: dict[str, Any]


def _required_list(data: dict, key: str, path: str) -> list:
    if key not in data:
        raise ValueError(f"annotation file {path} has no '{key}' list (keys: {sorted(data)})")
    if not isinstance(data[key], list):
        raise ValueError(f"annotation file {path}: '{key}' must be a list")
    return data[key]


def _index_annotations(
    annotations: list, images: dict, categories: dict, path: str
) -> tuple[list[dict], dict[int, list], dict[int, list]]:
    """Check every annotation; returns (kept annotations, boxes and category ids per image)."""
    _unique_ids(annotations, "annotation", path)
    report = _Report()
    kept: list[dict] = []
    boxes: dict[int, list] = {image_id: [] for image_id in images}
    cats: dict[int, list] = {image_id: [] for image_id in images}
    for ann in annotations:
        if ann.get("image_id") not in images:
            raise ValueError(
                f"{path}: annotation id {ann['id']} refers to unknown image id "
                f"{ann.get('image_id')}"
            )
        if ann.get("category_id") not in categories:
            raise ValueError(
                f"{path}: annotation id {ann['id']} (image id {ann['image_id']}) has category id "
                f"{ann.get('category_id')}, not among the declared categories {sorted(categories)}"
            )
        box = _clip_box(ann, images[ann["image_id"]], report)
        if box is None:
            continue
        kept.append(ann)
        if not ann.get("iscrowd", 0):
            boxes[ann["image_id"]].append(box)
            cats[ann["image_id"]].append(ann["category_id"])
    report.log(path)
    return kept, boxes, cats


def index_coco_json(path: str, require_annotations: bool = True) -> CocoIndex:
    """Load and check a COCO json (see the module docstring for what is fatal).

    Args:
        path: the json file.
        require_annotations: if False, a file without 'annotations' (e.g. COCO test-dev image
            info) is accepted with a warning and every image has no boxes.
    """
    data = load_json(path)
    images = dict(sorted(_unique_ids(_required_list(data, "images", path), "image", path).items()))
    _check_images(images, path)
    categories = _unique_ids(_required_list(data, "categories", path), "category", path)
    if "annotations" not in data and not require_annotations:
        logger.warning("%s has no 'annotations': images are loaded without boxes", path)
        data = {**data, "annotations": []}
    annotations = _required_list(data, "annotations", path)
    kept, boxes, cats = _index_annotations(annotations, images, categories, path)
    return CocoIndex(
        images=images,
        categories={cid: str(categories[cid].get("name", cid)) for cid in sorted(categories)},
        boxes={k: np.asarray(v, dtype=np.float32).reshape(-1, 4) for k, v in boxes.items()},
        category_ids={k: np.asarray(v, dtype=np.int64) for k, v in cats.items()},
        clean_json={**data, "annotations": kept},
    )
