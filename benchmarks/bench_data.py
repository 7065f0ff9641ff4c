"""Data-loading throughput: can one loader worker keep up with a training step?

Measures, on COCO-like JPEGs (photo-like content, quality 90), images per second for
  1. decoding only (`read_image`),
  2. the full training item: decode + Resize(800, max 1333) + flip + ToTensor + Normalize,
  3. a DataLoader with 1 worker, batch 2, collation into a padded ImageList,
and compares with what one GPU consumes in training. The reference is derived from the original
FCOS README: R-50 1x (90k iterations, 16 images per batch on 8 V100) trains in 6.5 h, i.e.
0.26 s per iteration with 2 images per GPU, so one GPU consumes ~7.7 images/s.

    python benchmarks/bench_data.py            # full run (~1 min)
    python benchmarks/bench_data.py --quick    # smoke test (a few seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import cv2
import numpy as np
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.data.collate_batch import BatchCollator
from fcos_core.data.datasets import COCODataset, read_image
from fcos_core.data.transforms import build_transforms

REFERENCE_STEP_S = 6.5 * 3600 / 90000  # FCOS README: R-50 1x trains in 6.5 h on 8 V100
REFERENCE_IMAGES_PER_GPU = 2


def _photo_like(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth colour field + edges + noise: compresses like a photo (not like flat colour)."""
    image = cv2.resize(
        rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    for _ in range(40):
        p1 = (int(rng.integers(width)), int(rng.integers(height)))
        p2 = (int(rng.integers(width)), int(rng.integers(height)))
        cv2.rectangle(
            image, p1, p2, tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(1, 4))
        )
    noise = rng.integers(0, 24, image.shape, dtype=np.uint8)
    return cv2.subtract(cv2.add(image, noise), 12)


def write_dataset(root: str, count: int, size: tuple[int, int]) -> tuple[str, str]:
    """COCO json + `count` JPEGs of `size` = (width, height); returns (ann_file, image_dir)."""
    image_dir = os.path.join(root, "images")
    os.makedirs(image_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    width, height = size
    for i in range(count):
        name = f"{i:05d}.jpg"
        cv2.imwrite(
            os.path.join(image_dir, name),
            _photo_like(rng, width, height),
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
        for k in range(7):  # COCO averages ~7 boxes per image
            x, y = float(rng.uniform(0, width - 50)), float(rng.uniform(0, height - 50))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": 1 + k % 3,
                    "bbox": [x, y, 40.0, 40.0],
                    "area": 1600.0,
                    "iscrowd": 0,
                }
            )
    ann_file = os.path.join(root, "instances.json")
    with open(ann_file, "w") as f:
        json.dump(
            {
                "images": images,
                "annotations": annotations,
                "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)],
            },
            f,
        )
    return ann_file, image_dir


def _rate(fn, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - start)


def _loader_rate(dataset: COCODataset, count: int) -> float:
    batches = [[(i % len(dataset), i) for i in range(b, b + 2)] for b in range(0, count, 2)]
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, num_workers=1, collate_fn=BatchCollator(32)
    )
    iterator = iter(loader)
    next(iterator)  # worker start-up is not part of the steady state
    start = time.perf_counter()
    n = sum(len(ids) for _, _, ids in iterator)
    return n / (time.perf_counter() - start)


def bench(size: tuple[int, int], count: int) -> dict[str, float]:
    cfg = default_cfg.clone()  # defaults: Resize 800 / max 1333, flip 0.5, BGR255 normalisation
    with tempfile.TemporaryDirectory() as root:
        ann_file, image_dir = write_dataset(root, count, size)
        dataset = COCODataset(
            ann_file, image_dir, True, transforms=build_transforms(cfg, is_train=True)
        )
        decode = _rate(lambda i: read_image(dataset.image_path(i % len(dataset))), count)
        item = _rate(lambda i: dataset[(i % len(dataset), i)], count)
        loader = _loader_rate(dataset, count)
        out_shape = tuple(dataset[(0, 0)][0].shape)
    return {"decode": decode, "item": item, "loader_1_worker": loader, "out_shape": out_shape}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few small images: a smoke test")
    parser.add_argument("--count", type=int, default=60, help="images per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    sizes = [(640, 480)] if args.quick else [(640, 480), (1333, 800)]
    count = 6 if args.quick else args.count
    needed = REFERENCE_IMAGES_PER_GPU / REFERENCE_STEP_S
    print(
        f"reference: one GPU consumes {needed:.1f} images/s ({REFERENCE_IMAGES_PER_GPU} images per "
        f"{REFERENCE_STEP_S:.2f} s step, FCOS R-50 1x on V100)"
    )
    for size in sizes:
        r = bench(size, count)
        print(
            f"source {size[0]}x{size[1]} -> tensor {r['out_shape']}: "
            f"decode {r['decode']:.1f} img/s | "
            f"decode+augment {r['item']:.1f} img/s ({1000 / r['item']:.1f} ms/img) | "
            f"DataLoader 1 worker {r['loader_1_worker']:.1f} img/s | workers needed per GPU: "
            f"{int(np.ceil(needed / r['loader_1_worker']))}"
        )


if __name__ == "__main__":
    main()
