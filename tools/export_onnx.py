"""Export a trained fcos detector (any config) to ONNX. Same as `fcos export`.

    python tools/export_onnx.py --config-file configs/fcos/fcos_torchvision_R_50_FPN.yaml \
        --output fcos_torchvision_R_50_FPN.onnx MODEL.WEIGHT models/fcos_torchvision_R_50_FPN.pth

Run the graph with ``python demo/onnx_demo.py --model fcos.onnx --image x.jpg``. The code lives
in `fcos_core.engine.commands.export` and `fcos_core.export.onnx_export`.
"""

from __future__ import annotations

import argparse
from typing import Any

from fcos_core.engine.commands import export as command
from fcos_core.engine.commands import standalone_parser
from fcos_core.engine.defaults import run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return standalone_parser(command, prog="export_onnx.py").parse_args(argv)


def main(argv: list[str] | None = None) -> Any:
    return command.run(parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
