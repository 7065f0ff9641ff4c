"""Export a trained fcos detector (any config) to ONNX with dynamic image size.

Examples::

    # complete detector (pre-processing, network, post-processing) for onnxruntime
    python tools/export_onnx.py --config-file configs/fcos/fcos_torchvision_R_50_FPN.yaml \\
        --output fcos_torchvision_R_50_FPN.onnx MODEL.WEIGHT models/fcos_torchvision_R_50_FPN.pth
    # backbone + head only: per-level cls_logits / bbox_reg / centerness maps
    python tools/export_onnx.py --config-file configs/fcos/fcos_imprv_R_50_FPN_1x.yaml \\
        --mode head --output fcos_head.onnx MODEL.WEIGHT FCOS_imprv_R_50_FPN_1x.pth

Run the detector graph with ``python demo/onnx_demo.py --model fcos.onnx --image x.jpg``. The
graphs are described in `fcos_core.utils.onnx_export`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fcos_core.config.checks import load_config, run_cli  # noqa: E402
from fcos_core.modeling.detector import build_detection_model  # noqa: E402
from fcos_core.utils.checkpoint import DetectronCheckpointer  # noqa: E402
from fcos_core.utils.onnx_export import (  # noqa: E402
    DEFAULT_OPSET,
    DEFAULT_SAMPLE_SIZE,
    DEFORM_CONV_OPSET,
    EXPORT_MODES,
    export_onnx,
)

logger = logging.getLogger("fcos.export_onnx")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        help="config overrides, e.g. MODEL.WEIGHT x.pth",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    """Build the model, load MODEL.WEIGHT, export; returns the written path."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    cfg = load_config(args.config_file, args.opts)
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    model = build_detection_model(cfg)
    if cfg.MODEL.WEIGHT:
        DetectronCheckpointer(cfg, model, save_dir="").load(cfg.MODEL.WEIGHT, use_latest=False)
    else:
        logger.warning("MODEL.WEIGHT is empty: exporting randomly initialised weights")
    path = export_onnx(
        model,
        cfg,
        args.output,
        mode=args.mode,
        sample_size=tuple(args.sample_size),
        opset=args.opset,
    )
    logger.info("Wrote the %s graph to %s", args.mode, path)
    return path


if __name__ == "__main__":
    run_cli(main)
