"""Dataset pre-flight report (``fcos analyze-data``; a short version is logged when training
starts): what the detector will see after the configured resize, and what to change first.

Reads the annotations only (image sizes come from the json / xml): images, boxes per class,
images without boxes, crowd boxes, box sizes after the training resize against each FPN level's
regression range, boxes smaller than the smallest stride, aspect ratios, and the schedule's
epochs. Each warning names the config key to change.

FCOS assigns a location to the level whose range holds its largest regression target; at a
box's centre that target is half the box's longer side, so a box goes to level k when
``max(w, h) / 2`` lies in ``(SIZES_OF_INTEREST[k-1], SIZES_OF_INTEREST[k]]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from yacs.config import CfgNode

from fcos_core.data.transforms.transforms import get_size

# Warning thresholds (fractions of all boxes / images).
SMALL_BOX_WARN_FRACTION = 0.10
EMPTY_LEVEL_WARN_FRACTION = 0.01
RARE_CLASS_WARN_FRACTION = 0.01
EXTREME_ASPECT = 5.0
EXTREME_ASPECT_WARN_FRACTION = 0.05
# The original 1x schedule sees COCO about 12 times; fewer than this many passes is worth a note.
MIN_EPOCHS = 6.0


@dataclass
class DatasetStats:
    """Numbers of one dataset after the training resize (see the module docstring).

    Attributes:
        name: dataset name. class_names: names of labels 1..C.
        num_images / empty_images / crowd_boxes: counts.
        labels: int64[B] label of every usable box.
        sides: float64[B, 2] (width, height) of every box after the resize.
        resize_min_size: the shorter-side target used (the smallest of INPUT.MIN_SIZE_TRAIN).
    """

    name: str
    class_names: list[str]
    num_images: int
    empty_images: int
    crowd_boxes: int
    labels: np.ndarray
    sides: np.ndarray
    resize_min_size: int

    @property
    def num_boxes(self) -> int:
        return int(len(self.labels))


def load_dataset(cfg: CfgNode, name: str) -> Any:
    """Dataset ``name`` as training reads it, but with every image (no transforms)."""
    from fcos_core.data.build import build_dataset, load_catalog

    return build_dataset((name,), None, load_catalog(cfg), is_train=True, keep_empty_images=True)[0]


def _datasets(dataset: Any) -> list[Any]:
    return list(getattr(dataset, "datasets", [dataset]))


def _crowd_boxes(dataset: Any) -> int:
    coco = getattr(dataset, "coco", None)
    if coco is None:
        return 0
    ids = set(dataset.ids)
    annotations = coco.dataset.get("annotations", [])
    return sum(1 for a in annotations if a.get("iscrowd") and a["image_id"] in ids)


def _train_min_size(cfg: CfgNode) -> int:
    lo, _ = cfg.INPUT.MIN_SIZE_RANGE_TRAIN
    return int(lo) if lo >= 0 else int(min(cfg.INPUT.MIN_SIZE_TRAIN))


def collect_stats(cfg: CfgNode, dataset: Any, name: str) -> DatasetStats:
    """Box statistics of ``dataset`` (one dataset or a ConcatDataset) after the training resize."""
    min_size, max_size = _train_min_size(cfg), cfg.INPUT.MAX_SIZE_TRAIN
    labels, sides = [], []
    num_images = empty = crowd = 0
    class_names: list[str] = []
    for part in _datasets(dataset):
        class_names = class_names or list(part.class_names)
        crowd += _crowd_boxes(part)
        for index in range(len(part)):
            info = part.get_img_info(index)
            width, height = int(info["width"]), int(info["height"])
            target = part.get_groundtruth(index).convert("xyxy")
            boxes = target.bbox.numpy().astype(np.float64)
            num_images += 1
            if len(boxes) == 0:
                empty += 1
                continue
            out_h, out_w = get_size((width, height), min_size, max_size)
            scale = np.array([out_w / width, out_h / height])
            sides.append((boxes[:, 2:] - boxes[:, :2]) * scale)
            labels.append(target.get_field("labels").numpy())
    return DatasetStats(
        name=name, class_names=class_names, num_images=num_images, empty_images=empty,
        crowd_boxes=crowd, resize_min_size=min_size,
        labels=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        sides=np.concatenate(sides) if sides else np.zeros((0, 2)),
    )  # fmt: skip


def level_edges(cfg: CfgNode) -> list[float]:
    """Regression-range edges: [0, 64, 128, 256, 512, inf] for the default config."""
    return [0.0, *map(float, cfg.MODEL.FCOS.SIZES_OF_INTEREST), math.inf]


def level_names(cfg: CfgNode) -> list[str]:
    """["P3", ..., "P7"] (or from "P2" with the stride-4 level): "Pk" for stride 2 ** k."""
    return [f"P{round(math.log2(s))}" for s in cfg.MODEL.FCOS.FPN_STRIDES]


def boxes_per_level(cfg: CfgNode, stats: DatasetStats) -> list[int]:
    """How many boxes each FPN level receives (by half the longer side, see the docstring)."""
    half_long = stats.sides.max(axis=1) / 2 if stats.num_boxes else np.zeros(0)
    edges = level_edges(cfg)
    return [int(((half_long > lo) & (half_long <= hi)).sum()) for lo, hi in zip(edges, edges[1:])]


def _pct(count: int, total: int) -> str:
    return f"{100.0 * count / max(total, 1):.0f}%"


def check(cfg: CfgNode, stats: DatasetStats) -> list[str]:
    """Warnings about ``stats``, each naming the config key to change."""
    warnings = []
    stride = cfg.MODEL.FCOS.FPN_STRIDES[0]
    small = int((stats.sides.min(axis=1) < stride).sum()) if stats.num_boxes else 0
    if small > SMALL_BOX_WARN_FRACTION * stats.num_boxes:
        warnings.append(
            f"{_pct(small, stats.num_boxes)} of boxes are under {stride} px (the smallest FPN "
            f"stride) after resizing to {stats.resize_min_size}: raise INPUT.MIN_SIZE_TRAIN "
            "(and INPUT.MIN_SIZE_TEST), or crop/tile the images"
        )
    per_level = boxes_per_level(cfg, stats)
    few = EMPTY_LEVEL_WARN_FRACTION * stats.num_boxes
    empty_levels = [name for name, n in zip(level_names(cfg), per_level) if n < few]
    if stats.num_boxes and empty_levels:
        warnings.append(
            f"levels {', '.join(empty_levels)} receive under {EMPTY_LEVEL_WARN_FRACTION:.0%} of "
            f"the boxes ({per_level}): adjust MODEL.FCOS.SIZES_OF_INTEREST or INPUT.MIN_SIZE_TRAIN"
        )
    if stats.empty_images and not cfg.DATASETS.KEEP_EMPTY_IMAGES:
        warnings.append(
            f"{stats.empty_images} images ({_pct(stats.empty_images, stats.num_images)}) have no "
            "boxes and are left out of training: set DATASETS.KEEP_EMPTY_IMAGES True to train on "
            "them as negatives"
        )
    warnings += _class_warnings(cfg, stats) + _shape_warnings(cfg, stats)
    return warnings


def _class_warnings(cfg: CfgNode, stats: DatasetStats) -> list[str]:
    warnings = []
    if cfg.MODEL.FCOS.NUM_CLASSES != len(stats.class_names) + 1:
        warnings.append(
            f"MODEL.FCOS.NUM_CLASSES is {cfg.MODEL.FCOS.NUM_CLASSES} but {stats.name} has "
            f"{len(stats.class_names)} classes: set MODEL.FCOS.NUM_CLASSES "
            f"{len(stats.class_names) + 1}"
        )
    counts = np.bincount(stats.labels, minlength=len(stats.class_names) + 1)[1:]
    rare = [
        f"{name} ({n})" for name, n in zip(stats.class_names, counts)
        if n < RARE_CLASS_WARN_FRACTION * stats.num_boxes
    ]  # fmt: skip
    if rare:
        warnings.append(f"rare classes (under {RARE_CLASS_WARN_FRACTION:.0%} of boxes): "
                        + ", ".join(rare))  # fmt: skip
    return warnings


def _shape_warnings(cfg: CfgNode, stats: DatasetStats) -> list[str]:
    warnings = []
    if stats.num_boxes:
        ratio = stats.sides[:, 0] / np.maximum(stats.sides[:, 1], 1e-6)
        extreme = int(((ratio > EXTREME_ASPECT) | (ratio < 1 / EXTREME_ASPECT)).sum())
        if extreme > EXTREME_ASPECT_WARN_FRACTION * stats.num_boxes:
            warnings.append(
                f"{_pct(extreme, stats.num_boxes)} of boxes are longer than {EXTREME_ASPECT:g}:1: "
                "few locations fall inside them; consider MODEL.FCOS.CENTER_SAMPLING_RADIUS 0"
            )
    used = stats.num_images - (0 if cfg.DATASETS.KEEP_EMPTY_IMAGES else stats.empty_images)
    epochs = cfg.SOLVER.MAX_ITER * cfg.SOLVER.IMS_PER_BATCH / max(used, 1)
    if epochs < MIN_EPOCHS:
        warnings.append(
            f"SOLVER.MAX_ITER {cfg.SOLVER.MAX_ITER} x SOLVER.IMS_PER_BATCH "
            f"{cfg.SOLVER.IMS_PER_BATCH} passes over the {used} training images only "
            f"{epochs:.1f} times: raise SOLVER.MAX_ITER (and SOLVER.STEPS)"
        )
    return warnings


def report_lines(cfg: CfgNode, stats: DatasetStats, short: bool = False) -> list[str]:
    """The report as text lines (``short``: the summary and the warnings only)."""
    per_level = boxes_per_level(cfg, stats)
    edges = level_edges(cfg)
    stride = cfg.MODEL.FCOS.FPN_STRIDES[0]
    lines = [
        f"{stats.name}: {stats.num_images} images, {stats.num_boxes} boxes, "
        f"{stats.empty_images} images without boxes, {stats.crowd_boxes} crowd boxes",
        "boxes per FPN level after resizing to " + f"{stats.resize_min_size}: " + ", ".join(
            f"{name} {n}" for name, n in zip(level_names(cfg), per_level)
        ),
    ]  # fmt: skip
    if not short:
        counts = np.bincount(stats.labels, minlength=len(stats.class_names) + 1)[1:]
        lines.append("boxes per class: " + ", ".join(
            f"{name} {n}" for name, n in zip(stats.class_names, counts)
        ))  # fmt: skip
        if stats.num_boxes:
            side = np.sqrt(stats.sides.prod(axis=1))
            ratio = stats.sides[:, 0] / np.maximum(stats.sides[:, 1], 1e-6)
            lines += [
                "box size sqrt(w*h) after resize: "
                + ", ".join(f"p{q} {np.percentile(side, q):.0f}" for q in (5, 25, 50, 75, 95)),
                f"boxes under the smallest stride ({stride} px): "
                f"{int((stats.sides.min(axis=1) < stride).sum())}",
                "aspect ratio w/h: "
                + ", ".join(f"p{q} {np.percentile(ratio, q):.2f}" for q in (5, 50, 95)),
                "level ranges (half the longer side, px): " + ", ".join(
                    f"{name} ({lo:g}, {hi:g}]"
                    for name, lo, hi in zip(level_names(cfg), edges, edges[1:])
                ),
            ]  # fmt: skip
    lines += [f"WARNING: {w}" for w in check(cfg, stats)]
    return lines


def log_preflight(cfg: CfgNode, dataset: Any, log: Any) -> list[str]:
    """Log the short report of the training ``dataset`` (warnings as warnings); returns them."""
    stats = collect_stats(cfg, dataset, "+".join(cfg.DATASETS.TRAIN))
    lines = report_lines(cfg, stats, short=True)
    for line in lines:
        (log.warning if line.startswith("WARNING") else log.info)("Pre-flight: %s", line)
    return [line for line in lines if line.startswith("WARNING")]
