"""Train an FCOS detector, then evaluate it (unless --skip-test). Same as `fcos train`.

    python tools/train_net.py --config-file configs/fcos/fcos_R_50_FPN_1x.yaml [KEY VALUE ...]
    torchrun --nproc_per_node=8 tools/train_net.py --config-file ... [KEY VALUE ...]
    python -m torch.distributed.launch --nproc_per_node=8 tools/train_net.py --config-file ...
    srun python tools/train_net.py --config-file ...   (SLURM, see docs/slurm.md)

Training resumes from OUTPUT_DIR/last_checkpoint when it is a checkpoint of the same run
(--fresh / --resume otherwise). The code lives in `fcos_core.engine.commands.train`.
"""

from __future__ import annotations

import argparse
from typing import Any

from fcos_core.engine.commands import standalone_parser
from fcos_core.engine.commands import train as command
from fcos_core.engine.defaults import run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return standalone_parser(command, prog="train_net.py").parse_args(argv)


def main(argv: list[str] | None = None) -> Any:
    return command.run(parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
