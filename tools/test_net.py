"""Evaluate an FCOS detector on DATASETS.TEST. Same as `fcos test`.

    python tools/test_net.py --config-file configs/fcos/fcos_R_50_FPN_1x.yaml \
        MODEL.WEIGHT FCOS_R_50_FPN_1x.pth TEST.IMS_PER_BATCH 4

Weights: --ckpt if given, else MODEL.WEIGHT if set, else (or with --resume) OUTPUT_DIR's last
checkpoint. The code lives in `fcos_core.engine.commands.test`.
"""

from __future__ import annotations

import argparse
from typing import Any

from fcos_core.engine.commands import standalone_parser
from fcos_core.engine.commands import test as command
from fcos_core.engine.defaults import run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return standalone_parser(command, prog="test_net.py").parse_args(argv)


def main(argv: list[str] | None = None) -> Any:
    return command.run(parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
