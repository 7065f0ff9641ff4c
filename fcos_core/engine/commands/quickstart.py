"""``fcos quickstart`` and ``tools/quickstart.py`` (``make quickstart``)."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "quickstart"
HELP = "synthetic shapes: train a small FCOS on this machine, report COCO AP, draw pictures"
DEFAULT_CONFIG = "configs/quickstart/fcos_quickstart.yaml"
DESCRIPTION = f"""\
The quickstart: generate a synthetic shapes dataset, train a small FCOS (GPU if there is one,
else the CPU) within a time limit, evaluate COCO AP, plot the loss curve and draw predictions.

  fcos quickstart                       (same as: make quickstart)
  fcos quickstart --max-minutes 3 --output-dir output/qs --fresh

A second run resumes from the checkpoints in the output folder (--fresh deletes it first).
Default config: {DEFAULT_CONFIG}.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-file", default=DEFAULT_CONFIG, metavar="FILE")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="training time limit (default: SOLVER.MAX_MINUTES of the config)",
    )
    parser.add_argument("--output-dir", default=None, help="default: OUTPUT_DIR of the config")
    parser.add_argument("--fresh", action="store_true", help="delete the output folder first")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Data, training, evaluation, pictures; prints the summary and returns the results."""
    import os
    import shutil
    import time

    from fcos_core.engine.defaults import load_run_config
    from fcos_core.engine.launcher import setup
    from fcos_core.engine.quickstart import run_quickstart, summary
    from fcos_core.engine.run_info import config_name

    start = time.time()
    opts = list(args.opts)
    if args.max_minutes is not None:
        opts += ["SOLVER.MAX_MINUTES", str(args.max_minutes)]
    if args.output_dir:
        opts += ["OUTPUT_DIR", args.output_dir]
    cfg, config_file = load_run_config(args.config_file, opts)
    if args.fresh and os.path.isdir(cfg.OUTPUT_DIR):
        shutil.rmtree(cfg.OUTPUT_DIR)
    setup(cfg, local_rank=0, config_file=config_file, log_env=False)
    result = run_quickstart(cfg, config_name=config_name(config_file))
    print(summary(result, time.time() - start), flush=True)
    return result
