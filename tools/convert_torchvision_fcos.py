"""Convert torchvision's FCOS weights into an fcos checkpoint. Same as `fcos convert-torchvision`.

    python tools/convert_torchvision_fcos.py --download \
        --output models/fcos_torchvision_R_50_FPN.pth

The code lives in `fcos_core.engine.commands.convert_torchvision` and
`fcos_core.checkpoint.torchvision_convert`.
"""

from __future__ import annotations

import argparse
from typing import Any

from fcos_core.engine.commands import convert_torchvision as command
from fcos_core.engine.commands import standalone_parser
from fcos_core.engine.defaults import run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return standalone_parser(command, prog="convert_torchvision_fcos.py").parse_args(argv)


def main(argv: list[str] | None = None) -> Any:
    return command.run(parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
