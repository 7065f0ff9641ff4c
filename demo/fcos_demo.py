"""Detect objects in a folder of images and write annotated copies (headless).

    python demo/fcos_demo.py --config-file configs/fcos/fcos_R_50_FPN_1x.yaml \
        --weights FCOS_R_50_FPN_1x.pth --input images/ --output annotated/ [--threshold 0.5]

Per-class thresholds: --class-thresholds 0.5,0.4,... (one per class, labels 1..C), or
`--class-thresholds coco` for the original FCOS demo's COCO thresholds. Class names
come from --dataset NAME (a catalog dataset, e.g. shapes_val), else COCO names for 80 classes.
"""

from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cv2  # noqa: E402
from predictor import FCOSPredictor  # noqa: E402

from fcos_core.config.checks import ConfigError, load_config, run_cli  # noqa: E402
from fcos_core.data.build import build_dataset, load_catalog  # noqa: E402
from fcos_core.data.coco_classes import FCOS_COCO_CLASS_THRESHOLDS  # noqa: E402
from fcos_core.data.datasets.image_io import read_image  # noqa: E402

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="FCOS demo on a folder of images")
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--weights", default=None, help="weights (default: MODEL.WEIGHT)")
    parser.add_argument("--input", required=True, help="folder of images")
    parser.add_argument("--output", required=True, help="folder for annotated images")
    parser.add_argument("--threshold", type=float, default=0.5, help="score threshold, all classes")
    parser.add_argument(
        "--class-thresholds",
        default=None,
        help="comma-separated, one per class; 'coco' = the original FCOS demo's COCO thresholds",
    )
    parser.add_argument(
        "--no-fast",
        action="store_true",
        help="plain model instead of the inference fast path (TEST.FAST_PATH)",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="fast path under bf16 autocast (TEST.FAST_PATH_AUTOCAST bf16)",
    )
    parser.add_argument("--dataset", default=None, help="catalog dataset to take class names from")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides")
    return parser.parse_args(argv)


def _thresholds(args: argparse.Namespace) -> float | list[float]:
    if not args.class_thresholds:
        return args.threshold
    if args.class_thresholds == "coco":
        return list(FCOS_COCO_CLASS_THRESHOLDS)
    try:
        return [float(t) for t in args.class_thresholds.split(",")]
    except ValueError:
        raise ConfigError(
            f"--class-thresholds must be numbers separated by commas, got {args.class_thresholds!r}"
        ) from None


def main() -> None:
    args = parse_args()
    opts = list(args.opts) + (["MODEL.WEIGHT", args.weights] if args.weights else [])
    opts += ["TEST.FAST_PATH", "False"] if args.no_fast else []
    opts += ["TEST.FAST_PATH_AUTOCAST", "bf16"] if args.bf16 else []
    cfg = load_config(args.config_file, opts)
    if not os.path.isdir(args.input):
        raise ConfigError(f"--input must be a folder of images, got {args.input}")
    names = None
    if args.dataset:
        names = build_dataset((args.dataset,), None, load_catalog(cfg), is_train=False)[
            0
        ].class_names
    try:
        predictor = FCOSPredictor(cfg, _thresholds(args), names)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    os.makedirs(args.output, exist_ok=True)
    files = sorted(f for f in os.listdir(args.input) if f.lower().endswith(IMAGE_EXTENSIONS))
    for name in files:
        annotated = predictor.annotate(read_image(os.path.join(args.input, name)))
        cv2.imwrite(os.path.join(args.output, os.path.splitext(name)[0] + ".jpg"), annotated)
    print(f"wrote {len(files)} annotated image(s) to {args.output}")


if __name__ == "__main__":
    run_cli(main)
