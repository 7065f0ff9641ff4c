"""Train an FCOS detector (then evaluate it unless --skip-test).

    python tools/train_net.py --config-file configs/fcos/fcos_R_50_FPN_1x.yaml [KEY VALUE ...]
    torchrun --nproc_per_node=8 tools/train_net.py --config-file ... [KEY VALUE ...]
    python -m torch.distributed.launch --nproc_per_node=8 tools/train_net.py --config-file ...

Training resumes from OUTPUT_DIR/last_checkpoint when it exists.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fcos_core.config.checks import launch_argument_parser, load_config, run_cli  # noqa: E402
from fcos_core.engine.launcher import local_rank_from, run_test, setup, train  # noqa: E402
from fcos_core.utils.comm import synchronize  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = launch_argument_parser("FCOS training")
    parser.add_argument(
        "--skip-test", dest="skip_test", action="store_true", help="do not evaluate the final model"
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config_file, args.opts)
    local_rank = local_rank_from(args.local_rank)
    distributed = setup(cfg, local_rank, args.config_file)
    model = train(cfg, local_rank, distributed)
    if not args.skip_test:
        run_test(cfg, model, distributed)
    synchronize()


if __name__ == "__main__":
    run_cli(main)
