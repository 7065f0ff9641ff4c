"""Convert torchvision's FCOS (fcos_resnet50_fpn) weights into an fcos checkpoint.

Examples::

    # download torchvision's COCO weights (39.2 AP) and convert them
    python tools/convert_torchvision_fcos.py --download \\
        --output models/fcos_torchvision_R_50_FPN.pth
    # or convert a file you already have (a bare state dict or {"model": state_dict})
    python tools/convert_torchvision_fcos.py --input fcos_resnet50_fpn_coco-99b0c9b7.pth \\
        --output models/fcos_torchvision_R_50_FPN.pth

Then run it with ``configs/fcos/fcos_torchvision_R_50_FPN.yaml`` and
``MODEL.WEIGHT models/fcos_torchvision_R_50_FPN.pth``. The logic lives in
`fcos_core.utils.torchvision_convert`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fcos_core.config.checks import load_config, run_cli  # noqa: E402
from fcos_core.modeling.detector import build_detection_model  # noqa: E402
from fcos_core.utils.torchvision_convert import (  # noqa: E402
    CLASS_MAPS,
    convert_for_model,
    load_torchvision_state_dict,
    save_checkpoint,
)

DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "configs",
    "fcos",
    "fcos_torchvision_R_50_FPN.yaml",
)
logger = logging.getLogger("fcos.convert_torchvision_fcos")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="torchvision FCOS checkpoint file (.pth)")
    source.add_argument(
        "--download",
        action="store_true",
        help="download torchvision's FCOS_ResNet50_FPN_Weights.COCO_V1 (cached by torch.hub)",
    )
    parser.add_argument("--output", required=True, help="where to write the fcos checkpoint")
    parser.add_argument(
        "--config-file", default=DEFAULT_CONFIG, help="config the weights are checked against"
    )
    parser.add_argument(
        "--class-map",
        default="coco",
        choices=sorted(CLASS_MAPS),
        help="how torchvision's class rows become ours: "
        + "; ".join(f"{k}: {v}" for k, v in CLASS_MAPS.items()),
    )
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ..."
    )
    return parser.parse_args(argv)


def read_source(args: argparse.Namespace) -> dict:
    """The torchvision state dict named by --input or --download."""
    if args.download:
        from torchvision.models.detection import FCOS_ResNet50_FPN_Weights

        weights = FCOS_ResNet50_FPN_Weights.COCO_V1
        logger.info("Downloading %s", weights.url)
        return dict(weights.get_state_dict(progress=True, check_hash=True))
    return load_torchvision_state_dict(args.input)


def main(argv: list[str] | None = None) -> str:
    """Convert, check against the config's model, write; returns the output path."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    cfg = load_config(args.config_file, args.opts)
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    model = build_detection_model(cfg)
    state = convert_for_model(read_source(args), model, class_map=args.class_map)
    save_checkpoint(state, args.output)
    logger.info(
        "Wrote %d tensors to %s; use it with --config-file %s MODEL.WEIGHT %s",
        len(state),
        args.output,
        args.config_file,
        args.output,
    )
    return args.output


if __name__ == "__main__":
    run_cli(main)
