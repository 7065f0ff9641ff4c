"""``fcos export`` and ``tools/export_onnx.py``: a trained detector as an ONNX graph."""

from __future__ import annotations

import argparse
import logging

from fcos_core.export.onnx_export import (
    DEFAULT_OPSET,
    DEFAULT_SAMPLE_SIZE,
    DEFORM_CONV_OPSET,
    EXPORT_MODES,
)

NAME = "export"
HELP = "export a detector to ONNX (needs the [export] extra)"
DESCRIPTION = """\
Export a trained detector (any config) to ONNX with a dynamic image size.

  # the complete detector (pre-processing, network, post-processing) for onnxruntime
  fcos export --config-file configs/fcos/fcos_torchvision_R_50_FPN.yaml \\
      --output fcos.onnx MODEL.WEIGHT models/fcos_torchvision_R_50_FPN.pth
  # backbone + head only: per-level cls_logits / box_regression / centerness maps
  fcos export --config-file configs/fcos/fcos_imprv_R_50_FPN_1x.yaml --mode head \\
      --output fcos_head.onnx MODEL.WEIGHT FCOS_imprv_R_50_FPN_1x.pth

Run the detector graph with: python demo/onnx_demo.py --model fcos.onnx --image x.jpg
Needs onnx and onnxruntime: pip install 'fcos[export]'.
"""
logger = logging.getLogger("fcos.export_onnx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-file", required=True, help="the model's config (.yaml)")
    parser.add_argument("--output", required=True, help="ONNX file to write")
    parser.add_argument(
        "--mode",
        default="detector",
        choices=EXPORT_MODES,
        help="graph to export (default: %(default)s)",
    )
    parser.add_argument(
        "--sample-size",
        type=int,
        nargs=2,
        default=list(DEFAULT_SAMPLE_SIZE),
        metavar=("H", "W"),
        help="size of the traced input; the graph accepts any size (default: %(default)s)",
    )
    parser.add_argument(
        "--opset",
        type=int,
        default=None,
        help=f"ONNX opset (default: {DEFAULT_OPSET}, {DEFORM_CONV_OPSET} for deformable convs)",
    )
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        default=[],
        help="overrides, e.g. MODEL.WEIGHT x.pth",
    )


def run(args: argparse.Namespace) -> str:
    """Build the model, load MODEL.WEIGHT, export; returns the written path."""
    from fcos_core.config.checks import find_config_file
    from fcos_core.engine.defaults import load_config
    from fcos_core.export.onnx_export import export_onnx
    from fcos_core.modeling.detector import build_detection_model
    from fcos_core.utils.checkpoint import DetectronCheckpointer
    from fcos_core.utils.extras import require

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    require("onnx", "ONNX export")  # before the model is built: fail fast without the extra
    cfg = load_config(find_config_file(args.config_file), args.opts)
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    model = build_detection_model(cfg)
    if cfg.MODEL.WEIGHT:
        DetectronCheckpointer(cfg, model, save_dir="").load(cfg.MODEL.WEIGHT, use_latest=False)
    else:
        logger.warning("MODEL.WEIGHT is empty: exporting randomly initialised weights")
    path = export_onnx(
        model, cfg, args.output, mode=args.mode, sample_size=tuple(args.sample_size),
        opset=args.opset,
    )  # fmt: skip
    logger.info("Wrote the %s graph to %s", args.mode, path)
    return path
