"""The quickstart: synthetic shapes -> train a small FCOS -> COCO AP -> pictures.
Same as `fcos quickstart` and `make quickstart`.

    python tools/quickstart.py [--max-minutes 6] [--output-dir output/quickstart] [--fresh]

The code lives in `fcos_core.engine.commands.quickstart` and `fcos_core.engine.quickstart`.
"""

from __future__ import annotations

import argparse
from typing import Any

from fcos_core.engine.commands import quickstart as command
from fcos_core.engine.commands import standalone_parser
from fcos_core.engine.defaults import run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return standalone_parser(command, prog="quickstart.py").parse_args(argv)


def main(argv: list[str] | None = None) -> Any:
    return command.run(parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
