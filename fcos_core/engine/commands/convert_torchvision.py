"""``fcos convert-torchvision`` and ``tools/convert_torchvision_fcos.py``."""

from __future__ import annotations

import argparse
import logging

from fcos_core.checkpoint.torchvision_convert import CLASS_MAPS

NAME = "convert-torchvision"
HELP = "convert torchvision's FCOS (fcos_resnet50_fpn) weights into an fcos checkpoint"
DEFAULT_CONFIG = "configs/fcos/fcos_torchvision_R_50_FPN.yaml"
DESCRIPTION = f"""\
Convert torchvision's FCOS (fcos_resnet50_fpn) weights into an fcos checkpoint.

  # download torchvision's COCO weights (39.2 AP) and convert them
  fcos convert-torchvision --download --output models/fcos_torchvision_R_50_FPN.pth
  # or convert a file you already have (a bare state dict or {{"model": state_dict}})
  fcos convert-torchvision --input fcos_resnet50_fpn_coco-99b0c9b7.pth \\
      --output models/fcos_torchvision_R_50_FPN.pth

Then use it with --config-file {DEFAULT_CONFIG} and
MODEL.WEIGHT models/fcos_torchvision_R_50_FPN.pth.
"""
logger = logging.getLogger("fcos.convert_torchvision_fcos")


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def read_source(args: argparse.Namespace) -> dict:
    """The torchvision state dict named by --input or --download."""
    from fcos_core.checkpoint.torchvision_convert import load_torchvision_state_dict

    if args.download:
        from torchvision.models.detection import FCOS_ResNet50_FPN_Weights

        weights = FCOS_ResNet50_FPN_Weights.COCO_V1
        logger.info("Downloading %s", weights.url)
        return dict(weights.get_state_dict(progress=True, check_hash=True))
    return load_torchvision_state_dict(args.input)


def run(args: argparse.Namespace) -> str:
    """Convert, check against the config's model, write; returns the output path."""
    from fcos_core.checkpoint.torchvision_convert import convert_for_model, save_checkpoint
    from fcos_core.config.checks import find_config_file
    from fcos_core.engine.defaults import load_config
    from fcos_core.modeling.detector import build_detection_model

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config_file = find_config_file(args.config_file)
    cfg = load_config(config_file, args.opts)
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    model = build_detection_model(cfg)
    state = convert_for_model(read_source(args), model, class_map=args.class_map)
    save_checkpoint(state, args.output)
    logger.info(
        "Wrote %d tensors to %s; use it with --config-file %s MODEL.WEIGHT %s",
        len(state), args.output, config_file, args.output,
    )  # fmt: skip
    return args.output
