"""The subcommands of the ``fcos`` command, one module each.

Every module defines ``NAME``, ``HELP`` (one line for ``fcos --help``), ``DESCRIPTION`` (the
``--help`` text, with examples), ``add_arguments(parser)`` and ``run(args)``. ``fcos <NAME>`` and
the matching ``tools/*.py`` script parse the same arguments and call the same ``run``. Heavy imports
happen inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

# subcommand -> module of this package, in the order `fcos --help` lists them
MODULES = {
    "train": "train",
    "test": "test",
    "detect": "detect",
    "export": "export",
    "convert-torchvision": "convert_torchvision",
    "quickstart": "quickstart",
    "analyze-data": "analyze_data",
}


def command_module(name: str) -> ModuleType:
    """The module implementing subcommand ``name``."""
    if name not in MODULES:
        raise KeyError(f"unknown fcos command {name!r}; known: {', '.join(MODULES)}")
    return importlib.import_module(f"{__name__}.{MODULES[name]}")


def standalone_parser(module: ModuleType, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of a ``tools/*.py`` script: the subcommand's arguments on their own."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=module.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    return parser
