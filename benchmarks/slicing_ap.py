"""Sliced inference (TEST.SLICE) on large images with small objects: COCO AP with and without.

A small FCOS (the quickstart recipe) is trained at native resolution on ``shapes_small_train``
(256 px images, objects of 4-40 px) and evaluated through ``run_test`` (what ``fcos test`` runs)
on ``shapes_large_val`` (1024 px images, 30-90 objects of 8-40 px) in these ways:

- ``whole image at the test size``: plain inference, the image resized to INPUT.MIN_SIZE_TEST
  (256: every object shrinks 4x);
- ``tiles + whole image``: TEST.SLICE with --tile px tiles (--overlap shared) at the image's own
  scale (MIN_SIZE_TEST = tile), merged with the whole-image pass;
- ``tiles only``: the same without the whole-image pass;
- with --native-row, plain inference on the whole image at 1024 px (a reference, not slicing).

Prints one markdown table: AP, AP50, AP75, APs, APm and seconds per image (wall time of the
whole evaluation over the number of images).

    python benchmarks/slicing_ap.py --train-minutes 5        # trains into output/slicing_ap
    python benchmarks/slicing_ap.py --weights output/slicing_ap/model_final.pth
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from fcos_core.data.build import build_dataset, load_catalog
from fcos_core.engine.defaults import load_config
from fcos_core.engine.launcher import load_for_test, run_test
from fcos_core.modeling.detector import build_detection_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

QUICKSTART_CONFIG = os.path.join(ROOT, "configs", "quickstart", "fcos_quickstart.yaml")
TRAIN_SET, TEST_SET = "shapes_small_train", "shapes_large_val"
TRAIN_OPTS = ["DATASETS.TRAIN", f'("{TRAIN_SET}",)', "DATASETS.TEST", f'("{TEST_SET}",)']
LARGE_SIDE = 1024  # shapes_large_val's image side
METRICS = ("AP", "AP50", "AP75", "APs", "APm")


@dataclass
class Row:
    variant: str
    metrics: dict[str, float]
    seconds_per_image: float


def train(output_dir: str, minutes: float, config_file: str, device: str) -> str:
    """Train the recipe for ``minutes`` (SOLVER.MAX_MINUTES, the schedule fitted to it) with
    ``fcos train``; returns the final checkpoint."""
    cmd = [
        sys.executable, "-m", "fcos_core", "train", "--config-file", config_file, "--skip-test",
        "--fresh", "MODEL.DEVICE", device, *TRAIN_OPTS, "SOLVER.MAX_MINUTES", str(minutes),
        "OUTPUT_DIR", output_dir,
    ]  # fmt: skip
    print("training:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return os.path.join(output_dir, "model_final.pth")


def variants(tile: int, overlap: int, native_row: bool) -> dict[str, list[str]]:
    """Variant name -> config overrides."""
    sliced = ["TEST.SLICE.ENABLED", "True", "TEST.SLICE.TILE_SIZE", str(tile),
              "TEST.SLICE.OVERLAP", str(overlap), "INPUT.MIN_SIZE_TEST", str(tile),
              "INPUT.MAX_SIZE_TEST", str(tile)]  # fmt: skip
    rows = {
        f"whole image at the test size ({tile} px)": [
            "INPUT.MIN_SIZE_TEST", str(tile), "INPUT.MAX_SIZE_TEST", str(tile),
        ],
        f"tiles {tile} px (overlap {overlap}) + whole image": sliced,
        f"tiles {tile} px (overlap {overlap}) only": [
            *sliced, "TEST.SLICE.INCLUDE_FULL_IMAGE", "False",
        ],
    }  # fmt: skip
    if native_row:
        rows[f"whole image at {LARGE_SIDE} px (reference)"] = [
            "INPUT.MIN_SIZE_TEST", str(LARGE_SIDE), "INPUT.MAX_SIZE_TEST", str(LARGE_SIDE),
        ]  # fmt: skip
    return rows


def evaluate_variant(config_file: str, weights: str, device: str, opts: list[str]) -> Row:
    cfg = load_config(config_file, [*TRAIN_OPTS, "MODEL.DEVICE", device, "OUTPUT_DIR", "",
                                    "DATALOADER.NUM_WORKERS", "0", *opts])  # fmt: skip
    model = build_detection_model(cfg).to(device).eval()
    load_for_test(cfg, model, weights)
    start = time.perf_counter()
    (result,) = run_test(cfg, model, distributed=False, write_files=False)
    seconds = time.perf_counter() - start
    bbox = result[0].results["bbox"]  # (COCOResults, coco results)
    count = len(build_dataset((TEST_SET,), None, load_catalog(cfg), is_train=False)[0])
    return Row("", {m: float(bbox[m]) for m in METRICS}, seconds / count)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config-file", default=QUICKSTART_CONFIG)
    p.add_argument("--weights", default=None, help="trained checkpoint (default: train first)")
    p.add_argument("--train-minutes", type=float, default=5.0, help="training budget")
    p.add_argument("--output-dir", default=os.path.join(ROOT, "output", "slicing_ap"))
    p.add_argument("--tile", type=int, default=256, help="TEST.SLICE.TILE_SIZE")
    p.add_argument("--overlap", type=int, default=64, help="TEST.SLICE.OVERLAP")
    p.add_argument("--native-row", action="store_true", help="add the 1024 px whole-image row")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    weights = args.weights or train(
        args.output_dir, args.train_minutes, args.config_file, args.device
    )
    if not os.path.isfile(weights):
        raise SystemExit(f"--weights {weights}: no such file")
    rows = []
    for name, opts in variants(args.tile, args.overlap, args.native_row).items():
        row = evaluate_variant(args.config_file, weights, args.device, opts)
        row.variant = name
        rows.append(row)
        print(f"{name}: AP {row.metrics['AP']:.3f}", flush=True)
    print(f"\n{TEST_SET}, {os.path.relpath(args.config_file, ROOT)} + {weights} on {args.device}")
    print("| variant | " + " | ".join(METRICS) + " | s / image |")
    print("|---|" + "---|" * (len(METRICS) + 1))
    for r in rows:
        cells = " | ".join(f"{r.metrics[m] * 100:.1f}" for m in METRICS)
        print(f"| {r.variant} | {cells} | {r.seconds_per_image:.2f} |")
    return rows


if __name__ == "__main__":
    main()
