"""The bundled synthetic "shapes" detection dataset, in COCO or Pascal VOC format.

Five classes (rectangle, ellipse, triangle, cross, ring) in random colours on textured, cluttered
backgrounds, by default 1-8 objects per image from ~10 px to 90% of the image side, partly
occluding each other (each object keeps at least half of its pixels visible). Every COCO area
bucket (small < 32^2, medium, large > 96^2) is populated. Object sizes and counts are an
`ObjectSpec` (e.g. the shapes_small splits: many objects of 4-40 px). Image `i` of split `s` is
rendered from `default_rng([seed, crc32(s), i])`, so the dataset is a pure function of (seed,
split, image size, count, object spec): same arguments, same bytes of json.

Layout under `out_dir`:
    COCO: images/<split>/000001.jpg ..., annotations/instances_<split>.json
    VOC:  JPEGImages/<split>_000001.jpg, Annotations/<split>_000001.xml, ImageSets/Main/<split>.txt

Command line:
    python -m fcos_core.data.datasets.synthetic --out datasets/shapes --splits train:2000 val:300 \
        --size 256 --seed 0 [--format voc] [--min-side 4 --max-side 40 --objects 10:40]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
import zlib
from collections.abc import Iterator
from xml.sax.saxutils import escape

import cv2
import numpy as np

from fcos_core.data.datasets.synthetic_render import (
    DEFAULT_OBJECTS,
    SHAPE_CLASSES,
    ObjectSpec,
    RenderedObject,
    render_image,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when rendering changes, so cached datasets are regenerated
JPEG_QUALITY = 92
PARALLEL_MIN_IMAGES = 200  # smaller splits are rendered in-process
MAX_WORKERS = 4
VOC_DIFFICULT_AREA = 64  # VOC variant: objects with fewer visible pixels are marked difficult
_DESCRIPTION = "fcos synthetic shapes"


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode("utf-8")), index])


def _render_one(
    job: tuple[str, int, int, int, ObjectSpec],
) -> tuple[int, np.ndarray, list[RenderedObject]]:
    split, index, size, seed, spec = job
    image, objects = render_image(_image_rng(seed, split, index), size, spec)
    return index + 1, image, objects


def _default_workers(num_images: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 1 if num_images < PARALLEL_MIN_IMAGES else max(1, min(cpus, MAX_WORKERS))


def _render_split(
    split: str,
    num_images: int,
    size: int,
    seed: int,
    workers: int | None = None,
    objects: ObjectSpec = DEFAULT_OBJECTS,
) -> Iterator[tuple[int, np.ndarray, list[RenderedObject]]]:
    """Yield (image id, RGB image, objects) in image-id order, rendered by `workers` processes.

    Each image depends only on (seed, split, index, objects), so the output does not depend on
    `workers`.
    """
    objects.check_image_size(size)
    jobs = [(split, i, size, seed, objects) for i in range(num_images)]
    workers = _default_workers(num_images) if workers is None else workers
    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        yield from map(_render_one, jobs)
        return
    with mp.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_render_one, jobs, chunksize=16)


def _write_jpeg(path: str, image_rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise OSError(f"could not encode {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def _info(split: str, num_images: int, size: int, seed: int, objects: ObjectSpec) -> dict:
    """The split's identity (json "info"; the cache check compares it). The default object spec
    adds no key, so the original splits keep their bytes."""
    info = {
        "description": _DESCRIPTION,
        "version": FORMAT_VERSION,
        "split": split,
        "num_images": num_images,
        "image_size": size,
        "seed": seed,
    }
    if objects != DEFAULT_OBJECTS:
        info["objects"] = dataclasses.asdict(objects)
    return info


def _atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def generate_coco_split(
    out_dir: str,
    split: str,
    num_images: int,
    size: int = 256,
    seed: int = 0,
    objects: ObjectSpec = DEFAULT_OBJECTS,
) -> str:
    """Write one split in COCO format; returns the json path (written last, atomically)."""
    image_dir = os.path.join(out_dir, "images", split)
    tmp_dir = f"{image_dir}.tmp-{os.getpid()}"
    os.makedirs(tmp_dir, exist_ok=True)
    os.makedirs(os.path.join(out_dir, "annotations"), exist_ok=True)
    images, annotations = [], []
    rendered = _render_split(split, num_images, size, seed, objects=objects)
    for image_id, image, image_objects in rendered:
        file_name = f"{image_id:06d}.jpg"
        _write_jpeg(os.path.join(tmp_dir, file_name), image)
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for obj in image_objects:
            x1, y1, x2, y2 = obj.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj.category + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": obj.area,
                    "iscrowd": 0,
                }
            )
    shutil.rmtree(image_dir, ignore_errors=True)
    os.replace(tmp_dir, image_dir)
    data = {
        "info": _info(split, num_images, size, seed, objects),
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": k + 1, "name": n, "supercategory": "shape"} for k, n in enumerate(SHAPE_CLASSES)
        ],
    }
    json_path = coco_json_path(out_dir, split)
    _atomic_write_text(json_path, json.dumps(data, sort_keys=True, separators=(",", ":")))
    return json_path


def _voc_xml(file_stem: str, size: int, objects: list[RenderedObject]) -> str:
    """VOC annotation; bndbox uses 1-based inclusive pixel indices (xmin = x1 + 1, xmax = x2)."""
    parts = [
        f"<annotation><folder>VOC</folder><filename>{escape(file_stem)}.jpg</filename>",
        f"<size><width>{size}</width><height>{size}</height><depth>3</depth></size>",
    ]
    for obj in objects:
        x1, y1, x2, y2 = obj.box
        parts.append(
            f"<object><name>{SHAPE_CLASSES[obj.category]}</name>"
            f"<difficult>{int(obj.area < VOC_DIFFICULT_AREA)}</difficult><bndbox>"
            f"<xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax>"
            "</bndbox></object>"
        )
    return "".join(parts) + "</annotation>\n"


def generate_voc_split(
    out_dir: str,
    split: str,
    num_images: int,
    size: int = 256,
    seed: int = 0,
    objects: ObjectSpec = DEFAULT_OBJECTS,
) -> str:
    """Write one split in Pascal VOC format; returns the image-set file (written last).

    Objects smaller than 64 visible pixels are marked difficult, to exercise `use_difficult`.
    """
    for sub in ("JPEGImages", "Annotations", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    stems = []
    rendered = _render_split(split, num_images, size, seed, objects=objects)
    for image_id, image, image_objects in rendered:
        stem = f"{split}_{image_id:06d}"
        _write_jpeg(os.path.join(out_dir, "JPEGImages", f"{stem}.jpg"), image)
        _atomic_write_text(
            os.path.join(out_dir, "Annotations", f"{stem}.xml"),
            _voc_xml(stem, size, image_objects),
        )
        stems.append(stem)
    _atomic_write_text(
        voc_info_path(out_dir, split),
        json.dumps(_info(split, num_images, size, seed, objects), sort_keys=True),
    )
    split_file = os.path.join(out_dir, "ImageSets", "Main", f"{split}.txt")
    _atomic_write_text(split_file, "\n".join(stems) + "\n")
    return split_file


def coco_json_path(out_dir: str, split: str) -> str:
    return os.path.join(out_dir, "annotations", f"instances_{split}.json")


def voc_info_path(out_dir: str, split: str) -> str:
    return os.path.join(out_dir, "ImageSets", "Main", f".{split}_info.json")


def _cached_info(fmt: str, out_dir: str, split: str) -> dict | None:
    marker = (
        coco_json_path(out_dir, split)
        if fmt == "coco"
        else os.path.join(out_dir, "ImageSets", "Main", f"{split}.txt")
    )
    info_file = coco_json_path(out_dir, split) if fmt == "coco" else voc_info_path(out_dir, split)
    if not (os.path.isfile(marker) and os.path.isfile(info_file)):
        return None
    try:
        with open(info_file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data.get("info", data) if fmt == "coco" else data


@contextlib.contextmanager
def _dir_lock(out_dir: str) -> Iterator[None]:
    """Exclusive lock so concurrent processes (distributed ranks) generate a split only once."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ".lock"), "w") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_split(
    fmt: str,
    out_dir: str,
    split: str,
    num_images: int,
    size: int = 256,
    seed: int = 0,
    objects: ObjectSpec = DEFAULT_OBJECTS,
) -> None:
    """Generate a split unless an identical one (same format version and arguments) exists."""
    if fmt not in ("coco", "voc"):
        raise ValueError(f"synthetic format must be 'coco' or 'voc', got {fmt!r}")
    wanted = _info(split, num_images, size, seed, objects)
    with _dir_lock(out_dir):
        if _cached_info(fmt, out_dir, split) == wanted:
            return
        start = time.time()
        writer = generate_coco_split if fmt == "coco" else generate_voc_split
        writer(out_dir, split, num_images, size, seed, objects)
        logger.info(
            "generated synthetic %s split %r (%d images, %d px) in %s in %.1f s",
            fmt,
            split,
            num_images,
            size,
            out_dir,
            time.time() - start,
        )


def _parse_split(text: str) -> tuple[str, int]:
    name, _, count = text.partition(":")
    if not name or not count.isdigit():
        raise argparse.ArgumentTypeError(
            f"split must look like NAME:COUNT (e.g. train:2000), got {text!r}"
        )
    return name, int(count)


def _parse_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition(":")
    if not (low.isdigit() and high.isdigit()):
        raise argparse.ArgumentTypeError(f"expected MIN:MAX (e.g. 10:40), got {text!r}")
    return int(low), int(high)


def _object_spec(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ObjectSpec:
    """The command line's --min-side / --max-side / --objects as an ObjectSpec."""
    min_objects, max_objects = args.objects or (
        DEFAULT_OBJECTS.min_objects,
        DEFAULT_OBJECTS.max_objects,
    )
    try:
        spec = ObjectSpec(args.min_side, args.max_side, min_objects, max_objects)
        spec.check_image_size(args.size)
    except ValueError as e:
        parser.error(f"--min-side / --max-side / --objects: {e}")
    return spec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the synthetic shapes detection dataset.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--splits",
        nargs="+",
        type=_parse_split,
        default=[("train", 2000), ("val", 300)],
        help="NAME:COUNT pairs (default: train:2000 val:300)",
    )
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--format", choices=("coco", "voc"), default="coco")
    parser.add_argument(
        "--min-side",
        type=int,
        default=DEFAULT_OBJECTS.min_side,
        help=f"smallest object side in px (default {DEFAULT_OBJECTS.min_side})",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=None,
        help="largest object side in px (default: up to 90%% of the image side)",
    )
    parser.add_argument(
        "--objects",
        type=_parse_range,
        default=None,
        help="MIN:MAX objects tried per image (default "
        f"{DEFAULT_OBJECTS.min_objects}:{DEFAULT_OBJECTS.max_objects})",
    )
    args = parser.parse_args(argv)
    if args.size < 32:
        parser.error(f"--size must be at least 32, got {args.size}")
    spec = _object_spec(parser, args)
    for split, count in args.splits:
        start = time.time()
        writer = generate_coco_split if args.format == "coco" else generate_voc_split
        path = writer(args.out, split, count, args.size, args.seed, spec)
        print(f"{split}: {count} images -> {path} ({time.time() - start:.1f} s)")


if __name__ == "__main__":
    main()
