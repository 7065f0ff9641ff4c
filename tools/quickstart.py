"""The quickstart: synthetic shapes -> train a small FCOS on the CPU -> COCO AP -> pictures.

    python tools/quickstart.py [--max-minutes 6] [--output-dir output/quickstart] [KEY VALUE ...]

Runs in one process, on a GPU if there is one, else on the CPU. A second run resumes from the
checkpoints in the output folder (delete it, or pass --fresh, to start over).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fcos_core.config.checks import load_config, run_cli  # noqa: E402
from fcos_core.engine.launcher import setup  # noqa: E402
from fcos_core.engine.quickstart import run_quickstart, summary  # noqa: E402

DEFAULT_CONFIG = os.path.join(REPO, "configs", "quickstart", "fcos_quickstart.yaml")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="FCOS quickstart on synthetic data")
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
    return parser.parse_args(argv)


def main() -> None:
    start = time.time()
    args = parse_args()
    opts = list(args.opts)
    if args.max_minutes is not None:
        opts += ["SOLVER.MAX_MINUTES", str(args.max_minutes)]
    if args.output_dir:
        opts += ["OUTPUT_DIR", args.output_dir]
    cfg = load_config(args.config_file, opts)
    if args.fresh and os.path.isdir(cfg.OUTPUT_DIR):
        shutil.rmtree(cfg.OUTPUT_DIR)
    setup(cfg, local_rank=0, config_file=args.config_file, log_env=False)
    result = run_quickstart(cfg)
    print(summary(result, time.time() - start), flush=True)


if __name__ == "__main__":
    run_cli(main)
