"""The ``fcos`` command: one front door over the same code as ``tools/*.py``.

    fcos train --config-file configs/fcos/fcos_imprv_R_50_FPN_1x.yaml
    fcos test --config-file ... MODEL.WEIGHT model_final.pth
    fcos detect street.jpg photos/ --output detections/
    fcos street.jpg                     (the original FCOS `fcos IMAGE`)

``fcos <command> --help`` explains each command; the subcommands live in
`fcos_core.engine.commands`.
"""

from __future__ import annotations

import argparse
import sys

from fcos_core.engine.commands import MODULES, command_module
from fcos_core.engine.defaults import run_cli

DESCRIPTION = """\
FCOS: Fully Convolutional One-Stage object detection.

  fcos quickstart                                   train on synthetic shapes, report COCO AP
  fcos train --config-file CONFIG [KEY VALUE ...]   train (torchrun / srun: tools/train_net.py)
  fcos test --config-file CONFIG MODEL.WEIGHT FILE  evaluate
  fcos detect IMAGE_OR_FOLDER ... --output DIR      annotated images + detections.json
  fcos IMAGE                                        the same with the COCO model zoo model

Run `fcos COMMAND --help` for the options of a command.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``fcos`` parser with one subparser per command."""
    from fcos_core import __version__

    parser = argparse.ArgumentParser(
        prog="fcos", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"fcos {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in MODULES:
        module = command_module(name)
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    """``fcos IMAGE ...`` (the original FCOS command) means ``fcos detect IMAGE ...``."""
    if argv and argv[0] not in MODULES and not argv[0].startswith("-"):
        return ["detect", *argv]
    return argv


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fcos`` console script; returns the exit status (0)."""
    argv = _with_default_command(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        sys.exit(2)
    if extra and args.command == "detect":  # images / overrides given after an option
        args.inputs += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    run_cli(lambda: args.run(args))
    return 0  # the console script passes this to sys.exit
