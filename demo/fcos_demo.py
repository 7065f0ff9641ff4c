"""Detect objects in a folder of images and write annotated copies (headless).

    python demo/fcos_demo.py --config-file configs/fcos/fcos_R_50_FPN_1x.yaml \
        --weights FCOS_R_50_FPN_1x.pth --input images/ --output annotated/ [--threshold 0.5]

Per-class thresholds: --class-thresholds 0.5,0.4,... (one per class, labels 1..C), or
`--class-thresholds coco` for the original FCOS demo's COCO thresholds. Class names
come from --dataset NAME (a catalog dataset, e.g. shapes_val), else COCO names for 80 classes.
Also writes detections.json. `fcos detect` does the same (and takes single images too); both use
`fcos_core.engine.predictor.FCOSPredictor`. Untrained weights are refused unless
--allow-random-weights. Sliced inference (small objects in large images) is config keys at the
end: `TEST.SLICE.ENABLED True TEST.SLICE.TILE_SIZE 512` (docs/sliced_inference.md).
"""

from __future__ import annotations

import argparse
import os

from fcos_core.config.checks import ConfigError
from fcos_core.engine.commands import detect
from fcos_core.engine.defaults import run_cli


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
    detect.add_autocast_argument(parser)
    parser.add_argument("--dataset", default=None, help="catalog dataset to take class names from")
    parser.add_argument(
        "--allow-random-weights", action="store_true", help="run untrained weights (testing only)"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides")
    args = parser.parse_args(argv)
    args.device, args.batch_size = None, 1
    return args


def _thresholds(args: argparse.Namespace) -> float | list[float]:
    return detect.thresholds_from(args.threshold, args.class_thresholds)


def main() -> None:
    args = parse_args()
    if not os.path.isdir(args.input):
        raise ConfigError(f"--input must be a folder of images, got {args.input}")
    predictor = detect.build_predictor(args, list(args.opts))
    records = detect.write_detections(predictor, [args.input], args.output)
    print(f"wrote {len(records)} annotated image(s) to {args.output}")


if __name__ == "__main__":
    run_cli(main)
