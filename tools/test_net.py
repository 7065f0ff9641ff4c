"""Evaluate an FCOS detector on DATASETS.TEST (single process or distributed).

    python tools/test_net.py --config-file configs/fcos/fcos_R_50_FPN_1x.yaml \
        MODEL.WEIGHT FCOS_R_50_FPN_1x.pth TEST.IMS_PER_BATCH 4

Weights: --ckpt if given, else OUTPUT_DIR/last_checkpoint, else MODEL.WEIGHT.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fcos_core.config.checks import launch_argument_parser, load_config, run_cli  # noqa: E402
from fcos_core.engine.launcher import build_model, load_for_test, local_rank_from, run_test, setup  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = launch_argument_parser("FCOS inference and evaluation")
    parser.add_argument(
        "--ckpt", default=None, help="checkpoint to evaluate (overrides the others)"
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config_file, args.opts)
    local_rank = local_rank_from(args.local_rank)
    distributed = setup(cfg, local_rank, args.config_file)
    model = build_model(cfg, distributed, local_rank)
    load_for_test(cfg, model, args.ckpt)
    run_test(cfg, model, distributed)


if __name__ == "__main__":
    run_cli(main)
