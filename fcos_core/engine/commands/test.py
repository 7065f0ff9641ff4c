"""``fcos test`` and ``tools/test_net.py``."""

from __future__ import annotations

import argparse
from typing import Any

from fcos_core.engine.defaults import launch_argument_parser

NAME = "test"
HELP = "evaluate a detector on DATASETS.TEST (COCO AP)"
DESCRIPTION = """\
Evaluate a detector on DATASETS.TEST (single process or distributed).

  fcos test --config-file configs/fcos/fcos_imprv_R_50_FPN_1x.yaml \\
      MODEL.WEIGHT FCOS_imprv_R_50_FPN_1x.pth TEST.IMS_PER_BATCH 4

Weights evaluated: --ckpt if given, else MODEL.WEIGHT if set, else OUTPUT_DIR's last checkpoint.
--resume evaluates OUTPUT_DIR's last checkpoint even when MODEL.WEIGHT is set.
Results go to OUTPUT_DIR/inference/<dataset>/ (default OUTPUT_DIR: output/<config name>).
Sliced inference (large images, small objects): TEST.SLICE.ENABLED True TEST.SLICE.TILE_SIZE 512
TEST.SLICE.OVERLAP 128 (docs/sliced_inference.md).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    launch_argument_parser(DESCRIPTION, parser)
    parser.add_argument(
        "--ckpt", default=None, help="checkpoint to evaluate (overrides the others)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="evaluate OUTPUT_DIR's last checkpoint instead of MODEL.WEIGHT",
    )


def run(args: argparse.Namespace) -> Any:
    """Set up, build the model, load the weights, evaluate; returns the results per dataset."""
    from fcos_core.engine.defaults import load_run_config
    from fcos_core.engine.launcher import (
        build_model,
        load_for_test,
        run_test,
        setup,
    )
    from fcos_core.utils.comm import get_local_rank
    from fcos_core.utils.slurm import apply_slurm_environment

    cfg, config_file = load_run_config(args.config_file, args.opts)
    apply_slurm_environment()  # srun tasks: RANK, WORLD_SIZE, ... from SLURM's variables
    local_rank = get_local_rank(args.local_rank)
    distributed = setup(cfg, local_rank, config_file)
    model = build_model(cfg)
    load_for_test(cfg, model, args.ckpt, resume=args.resume)
    return run_test(cfg, model, distributed)
