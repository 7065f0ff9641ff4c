"""``fcos detect`` (and ``fcos IMAGE``, the original FCOS command): annotated images and a json."""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

from fcos_core.utils.precision import PRECISIONS

NAME = "detect"
HELP = "detect objects in images or folders; write annotated images and detections.json"
DEFAULT_CONFIG = "configs/fcos/fcos_imprv_R_50_FPN_1x.yaml"
DEFAULT_WEIGHTS = "FCOS_imprv_R_50_FPN_1x"
JSON_NAME = "detections.json"
# a config override key, e.g. MODEL.DEVICE: where the images end and the overrides begin
OVERRIDE_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")
DESCRIPTION = f"""\
Detect objects in images and folders of images. Writes one annotated copy per image and
{JSON_NAME} (per image: boxes xyxy in original pixels, labels, class names, scores).

  fcos detect street.jpg photos/ --output detections/
  fcos street.jpg                                  (the original `fcos IMAGE`: COCO model)
  fcos detect images/ --config-file configs/quickstart/fcos_quickstart.yaml \\
      --weights output/quickstart/model_final.pth --dataset shapes_val --output out/

Defaults: --config-file {DEFAULT_CONFIG} with --weights {DEFAULT_WEIGHTS} (downloaded once).
Weights: a .pth path, a URL or a model zoo name. Untrained weights are refused unless
--allow-random-weights. KEY VALUE config overrides go at the end, e.g. sliced inference for
small objects in large images: TEST.SLICE.ENABLED True TEST.SLICE.TILE_SIZE 512
(docs/sliced_inference.md).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="*", metavar="IMAGE_OR_FOLDER", help="images and folders, then KEY VALUE"
    )
    parser.add_argument(
        "--input", action="append", default=[], help="an image or folder (repeatable)"
    )
    parser.add_argument("--output", default="detections", help="folder for the results")
    parser.add_argument("--config-file", default=None, metavar="FILE", help="the model's config")
    parser.add_argument("--weights", default=None, help="weights: path, URL or model zoo name")
    parser.add_argument("--threshold", type=float, default=0.5, help="score threshold, all classes")
    parser.add_argument(
        "--class-thresholds",
        default=None,
        help="comma-separated, one per class; 'coco' = the original FCOS demo's COCO thresholds",
    )
    parser.add_argument("--dataset", default=None, help="catalog dataset to take class names from")
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: MODEL.DEVICE)"
    )
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    parser.add_argument(
        "--no-fast",
        action="store_true",
        help="plain model, not the fast path (TEST.FAST_PATH)",
    )
    add_autocast_argument(parser)
    parser.add_argument(
        "--allow-random-weights",
        action="store_true",
        help="run even if the weights do not cover the whole model (for testing only)",
    )


def add_autocast_argument(parser: argparse.ArgumentParser) -> None:
    """``--autocast DTYPE``: the fast path's autocast (TEST.FAST_PATH_AUTOCAST)."""
    parser.add_argument(
        "--autocast",
        choices=PRECISIONS,
        default=None,
        help="fast path autocast dtype (TEST.FAST_PATH_AUTOCAST; auto: bfloat16 on CPUs with "
        "native bfloat16, float16 on CUDA, else float32)",
    )


def split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """(images and folders, KEY VALUE overrides): the overrides start at the first config key."""
    for i, item in enumerate(items):
        if OVERRIDE_KEY.match(item) and not os.path.exists(item):
            return items[:i], items[i:]
    return items, []


def thresholds_from(threshold: float, class_thresholds: str | None) -> float | list[float]:
    """--threshold / --class-thresholds as the predictor's ``thresholds`` argument."""
    from fcos_core.config.checks import ConfigError
    from fcos_core.data.coco_classes import FCOS_COCO_CLASS_THRESHOLDS

    if not class_thresholds:
        return threshold
    if class_thresholds == "coco":
        return list(FCOS_COCO_CLASS_THRESHOLDS)
    try:
        return [float(t) for t in class_thresholds.split(",")]
    except ValueError:
        raise ConfigError(
            f"--class-thresholds must be numbers separated by commas, got {class_thresholds!r}"
        ) from None


def build_predictor(args: argparse.Namespace, opts: list[str]) -> Any:
    """The predictor the arguments describe (errors in user input become ConfigError)."""
    from fcos_core.config.checks import ConfigError, find_config_file
    from fcos_core.data.build import build_dataset, load_catalog
    from fcos_core.engine.defaults import load_config
    from fcos_core.engine.predictor import FCOSPredictor

    config_file = find_config_file(args.config_file or DEFAULT_CONFIG)
    weights = args.weights or (DEFAULT_WEIGHTS if args.config_file is None else None)
    opts = opts + (["TEST.FAST_PATH", "False"] if args.no_fast else [])
    opts += ["TEST.FAST_PATH_AUTOCAST", args.autocast] if args.autocast else []
    cfg = load_config(config_file, opts)
    names = None
    if args.dataset:
        dataset = build_dataset((args.dataset,), None, load_catalog(cfg), is_train=False)[0]
        names = dataset.class_names
    try:
        return FCOSPredictor(
            cfg, thresholds_from(args.threshold, args.class_thresholds), names,
            weights=weights, device=args.device, batch_size=args.batch_size,
            allow_random_weights=args.allow_random_weights,
        )  # fmt: skip
    except ValueError as e:
        raise ConfigError(str(e)) from None


def write_detections(predictor: Any, inputs: list[Any], output_dir: str) -> list[dict[str, Any]]:
    """Annotated ``<name>.jpg`` per image and ``detections.json`` in ``output_dir``."""
    import cv2

    from fcos_core.data.datasets.image_io import read_image

    os.makedirs(output_dir, exist_ok=True)
    records = []
    for det in predictor.iter_predictions(inputs):
        image_bgr = cv2.cvtColor(read_image(det.source), cv2.COLOR_RGB2BGR)
        stem = os.path.splitext(os.path.basename(det.source))[0]
        cv2.imwrite(os.path.join(output_dir, f"{stem}.jpg"), predictor.draw(image_bgr, det))
        records.append(det.to_dict())
    with open(os.path.join(output_dir, JSON_NAME), "w") as f:
        json.dump(records, f, indent=1)
    return records


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Detect in every input; returns the records written to detections.json."""
    from fcos_core.config.checks import ConfigError
    from fcos_core.engine.predictor import expand_inputs

    inputs, opts = split_overrides(list(args.inputs))
    inputs += args.input
    if not inputs:
        raise ConfigError("no input: give images or folders (fcos detect IMAGE_OR_FOLDER ...)")
    try:
        files = expand_inputs(inputs)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    records = write_detections(build_predictor(args, opts), files, args.output)
    total = sum(len(r["detections"]) for r in records)
    print(f"{total} detection(s) in {len(records)} image(s); wrote {args.output}/{JSON_NAME}")
    return records
