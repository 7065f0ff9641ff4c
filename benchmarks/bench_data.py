"""Data-loading throughput: can one loader worker keep up with a training step?

Measures, on COCO-like JPEGs (photo-like content, quality 90), images per second for
  1. decoding only (`read_image`),
  2. the full training item: decode + Resize(800, max 1333) + flip + the tensor step,
  3. a DataLoader with 1 worker, batch 2, collation into a padded ImageList,
for two pipelines in the same run: the original one (ToTensor + Normalize in the worker, float32
batches: `build_transforms(..., normalize_in_worker=True)`) and today's (ToUint8Tensor, uint8
batches that the model normalises on its device), with the MB of each batch (what the
host-to-device copy moves) and, for uint8, the model's preprocessing of one batch on this CPU.
It compares with what one GPU consumes in training. The reference is derived from the original
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
from fcos_core.modeling.preprocess import ImagePreprocessor
from fcos_core.structures.image_list import ImageList

REFERENCE_STEP_S = 6.5 * 3600 / 90000  # FCOS README: R-50 1x trains in 6.5 h on 8 V100
REFERENCE_IMAGES_PER_GPU = 2
LOADER_BATCH = 2  # images per DataLoader batch
# Pipeline name -> build_transforms(normalize_in_worker=...).
PIPELINES = {
    "float32, normalised in the worker (before)": True,
    "uint8, normalised by the model (now)": False,
}


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


def _loader_rate(dataset: COCODataset, count: int) -> tuple[float, ImageList]:
    """(images/s of a 1-worker DataLoader in the steady state, its first batch)."""
    batches = [
        [(i % len(dataset), i) for i in range(b, b + LOADER_BATCH)]
        for b in range(0, count, LOADER_BATCH)
    ]
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, num_workers=1, collate_fn=BatchCollator(32)
    )
    iterator = iter(loader)
    first, _, _ = next(iterator)  # worker start-up is not part of the steady state
    start = time.perf_counter()
    n = sum(len(ids) for _, _, ids in iterator)
    return n / (time.perf_counter() - start), first


def _preprocess_ms(cfg, batch: ImageList, repeats: int = 3) -> float:
    """Milliseconds of the model's preprocessing of ``batch`` on this CPU (best of repeats)."""
    preprocess = ImagePreprocessor.from_config(cfg)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        preprocess(batch)
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def _bench_pipeline(cfg, dataset: COCODataset, count: int, in_worker: bool) -> dict[str, object]:
    """Item rate, 1-worker loader rate, MB per batch (and the model's preprocessing time)."""
    item = _rate(lambda i: dataset[(i % len(dataset), i)], count)
    loader, batch = _loader_rate(dataset, count)
    row: dict[str, object] = {"item": item, "loader_1_worker": loader, "batch": batch}
    row["mb_per_batch"] = batch.tensors.nbytes / 2**20
    if not in_worker:
        row["preprocess_ms"] = _preprocess_ms(cfg, batch)
    return row


def bench(size: tuple[int, int], count: int) -> dict[str, object]:
    """Decode rate and output shape, and one `_bench_pipeline` row per entry of PIPELINES."""
    cfg = default_cfg.clone()  # defaults: Resize 800 / max 1333, flip 0.5, BGR255 normalisation
    with tempfile.TemporaryDirectory() as root:
        ann_file, image_dir = write_dataset(root, count, size)
        datasets = {
            name: COCODataset(
                ann_file,
                image_dir,
                True,
                transforms=build_transforms(cfg, is_train=True, normalize_in_worker=in_worker),
            )
            for name, in_worker in PIPELINES.items()
        }
        first = next(iter(datasets.values()))
        result: dict[str, object] = {
            "decode": _rate(lambda i: read_image(first.image_path(i % len(first))), count),
            "out_shape": tuple(first[(0, 0)][0].shape),
        }
        for name, in_worker in PIPELINES.items():
            result[name] = _bench_pipeline(cfg, datasets[name], count, in_worker)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few small images: a smoke test")
    parser.add_argument(
        "--count", type=int, default=None, help="images per measurement (default 60; --quick: 6)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    sizes = [(640, 480)] if args.quick else [(640, 480), (1333, 800)]
    count = args.count or (6 if args.quick else 60)
    needed = REFERENCE_IMAGES_PER_GPU / REFERENCE_STEP_S
    print(
        f"reference: one GPU consumes {needed:.1f} images/s ({REFERENCE_IMAGES_PER_GPU} images per "
        f"{REFERENCE_STEP_S:.2f} s step, FCOS R-50 1x on V100)"
    )
    for size in sizes:
        r = bench(size, count)
        print(
            f"source {size[0]}x{size[1]} -> tensor {r['out_shape']}: decode {r['decode']:.1f} img/s"
        )
        for name in PIPELINES:
            p = r[name]
            batch = p["batch"]
            extra = (
                f" | model preprocessing on this CPU {p['preprocess_ms']:.1f} ms/batch"
                if "preprocess_ms" in p
                else ""
            )
            print(
                f"  {name}: decode+augment {p['item']:.1f} img/s ({1000 / p['item']:.1f} ms/img) | "
                f"DataLoader 1 worker {p['loader_1_worker']:.1f} img/s | "
                f"{p['mb_per_batch']:.1f} MB/batch ({batch.tensors.dtype}, "
                f"{tuple(batch.tensors.shape)}) | workers needed per GPU: "
                f"{int(np.ceil(needed / p['loader_1_worker']))}{extra}"
            )


if __name__ == "__main__":
    main()
