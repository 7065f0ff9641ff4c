"""``fcos train`` and ``tools/train_net.py``."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from fcos_core.engine.defaults import launch_argument_parser

NAME = "train"
HELP = "train a detector, then evaluate it on DATASETS.TEST"
DESCRIPTION = """\
Train an FCOS detector, then evaluate it on DATASETS.TEST (unless --skip-test).

  fcos train --config-file configs/fcos/fcos_imprv_R_50_FPN_1x.yaml SOLVER.IMS_PER_BATCH 8
  torchrun --nproc_per_node=8 tools/train_net.py --config-file ... [KEY VALUE ...]
  srun python tools/train_net.py --config-file ...      (SLURM: one task per GPU)

Outputs go to OUTPUT_DIR (default: output/<config name>). A run resumes from the last checkpoint
there when its model and config name match; --fresh starts over, --resume continues anyway.
Another batch size: SOLVER.IMS_PER_BATCH 4 SOLVER.REFERENCE_IMS_PER_BATCH 16 scales BASE_LR,
MAX_ITER, STEPS and WARMUP_ITERS from the config's batch of 16 to 4 (linear scaling rule).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    launch_argument_parser(DESCRIPTION, parser)
    parser.add_argument(
        "--skip-test", dest="skip_test", action="store_true", help="do not evaluate the final model"
    )
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--resume",
        action="store_true",
        help="resume from OUTPUT_DIR's last checkpoint even if it comes from another config",
    )
    choice.add_argument(
        "--fresh",
        action="store_true",
        help="ignore OUTPUT_DIR's checkpoints: start from MODEL.WEIGHT at iteration 0",
    )


def run(args: argparse.Namespace) -> Any:
    """Set up (process group, logging), train, evaluate; returns the trained model."""
    from fcos_core.engine.defaults import load_run_config
    from fcos_core.engine.launcher import run_test, setup, train
    from fcos_core.engine.run_info import config_name
    from fcos_core.solver.scaling import batch_mismatch_warning, config_file_batch, scale_schedule
    from fcos_core.utils.comm import get_local_rank, synchronize
    from fcos_core.utils.slurm import apply_slurm_environment

    cfg, config_file = load_run_config(args.config_file, args.opts)
    notes = [scale_schedule(cfg), batch_mismatch_warning(cfg, config_file_batch(config_file))]
    apply_slurm_environment()  # srun tasks: RANK, WORLD_SIZE, ... from SLURM's variables
    local_rank = get_local_rank(args.local_rank)
    distributed = setup(cfg, local_rank, config_file)  # logs the (scaled) config
    for note in filter(None, notes):
        logging.getLogger("fcos_core").warning("%s", note)
    resume = "fresh" if args.fresh else "force" if args.resume else "auto"
    model = train(cfg, local_rank, distributed, resume=resume, config_name=config_name(config_file))
    if not args.skip_test:
        run_test(cfg, model, distributed)
    synchronize()
    return model
