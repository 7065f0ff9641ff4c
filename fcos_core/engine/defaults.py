"""The command-line front door shared by `tools/*.py`, the ``fcos`` command and the demo (the
role of detectron2's ``engine/defaults.py``).

``load_config(config_file, opts)`` merges a yaml file and ``KEY VALUE`` overrides into a clone of
the defaults, then checks enum values against the builders' own name tables and dataset names
against the catalog (raising :class:`~fcos_core.config.checks.ConfigError`). ``run_cli(main)``
prints such errors, and the other user-facing errors in ``user_errors()``, as ``error: ...`` and
exits with status 2, instead of a traceback. ``launch_argument_parser`` gives every
launcher-compatible tool the same arguments.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from typing import Any

from yacs.config import CfgNode

from fcos_core.config.checks import (
    ConfigError,
    check_values,
    find_config_file,
    get_value,
    merge_file,
    merge_opts,
)
from fcos_core.config.paths_catalog import DatasetNotFoundError
from fcos_core.data.build import load_catalog
from fcos_core.data.evaluation.coco_eval import COCO_BACKENDS
from fcos_core.engine.trainer import NONFINITE_POLICIES, NonFiniteLossError
from fcos_core.layers.iou_loss import LOSS_TYPES
from fcos_core.modeling.backbone.backbone import BACKBONES
from fcos_core.modeling.backbone.resnet import STEM_FUNCS, TRANS_FUNCS
from fcos_core.modeling.detector import META_ARCHITECTURES
from fcos_core.modeling.fcos.inference_core import DETECTIONS_PER_IMG_TIES
from fcos_core.solver.build import OPTIMIZERS
from fcos_core.solver.lr_scheduler import WARMUP_METHODS
from fcos_core.structures.box_convention import BOX_CONVENTIONS
from fcos_core.utils.extras import MissingExtraError
from fcos_core.utils.imports import import_user_files
from fcos_core.utils.precision import PRECISIONS
from fcos_core.utils.safe_io import CheckpointLoadError

EXIT_USER_ERROR = 2


def enum_choices() -> dict[str, tuple[str, ...]]:
    """Config key -> allowed values, read from the builders' own name tables."""

    return {
        "MODEL.META_ARCHITECTURE": tuple(META_ARCHITECTURES),
        "MODEL.BOX_CONVENTION": BOX_CONVENTIONS,
        "MODEL.BACKBONE.CONV_BODY": tuple(BACKBONES),
        "MODEL.RESNETS.TRANS_FUNC": tuple(TRANS_FUNCS),
        "MODEL.RESNETS.STEM_FUNC": tuple(STEM_FUNCS),
        "MODEL.FCOS.IOU_LOSS_TYPE": tuple(LOSS_TYPES),
        "SOLVER.OPTIMIZER": tuple(OPTIMIZERS),
        "SOLVER.WARMUP_METHOD": tuple(WARMUP_METHODS),
        "SOLVER.NONFINITE_LOSS": tuple(NONFINITE_POLICIES),
        "AMP.DTYPE": PRECISIONS,
        "TEST.FAST_PATH_AUTOCAST": PRECISIONS,
        "TEST.COCO_EVAL_BACKEND": tuple(COCO_BACKENDS),
        "TEST.DETECTIONS_PER_IMG_TIES": DETECTIONS_PER_IMG_TIES,
    }


def check_datasets(cfg: CfgNode) -> None:
    """Every DATASETS.TRAIN / TEST name is in the catalog (after DATASETS.REGISTER)."""

    try:
        catalog = load_catalog(cfg)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from None
    known = catalog.DatasetCatalog.names()
    for key in ("DATASETS.TRAIN", "DATASETS.TEST"):
        for name in get_value(cfg, key):
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]}?" if close else ""
                raise ConfigError(
                    f"{key}: dataset {name!r} is not in the catalog.{hint} "
                    f"Known: {', '.join(known)}"
                )


def load_config(
    config_file: str | None, opts: list[str] | None = None, base: CfgNode | None = None
) -> CfgNode:
    """Defaults + ``config_file`` + ``opts``, checked; returned unfrozen.

    Raises:
        ConfigError: missing file, bad YAML, unknown key, wrong type, bad enum value, unknown
            dataset name.
    """
    if base is None:
        from fcos_core.config import cfg as base
    cfg = base.clone()
    if config_file:
        merge_file(cfg, config_file)
    merge_opts(cfg, list(opts or []))
    check_values(cfg, enum_choices())
    check_datasets(cfg)
    return cfg


def load_run_config(config_file: str, opts: list[str] | None = None) -> tuple[CfgNode, str]:
    """The config of a run (train, test, quickstart, analyze-data): ``config_file`` looked up
    under the project root too, loaded with ``opts``, and an OUTPUT_DIR left at "." replaced by
    ``output/<config name>``. Returns (cfg unfrozen, the config file's path)."""
    from fcos_core.engine.run_info import apply_default_output_dir

    path = find_config_file(config_file)
    cfg = load_config(path, opts)
    apply_default_output_dir(cfg, path)
    return cfg, path


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a tool reports as one line: the user's input is wrong, not the code."""

    return (
        ConfigError,
        DatasetNotFoundError,
        CheckpointLoadError,
        NonFiniteLossError,
        MissingExtraError,
    )


def run_cli(main: Callable[[], Any]) -> Any:
    """Call ``main()``; print user errors as one ``error:`` line and exit with status 2."""
    try:
        return main()
    except user_errors() as e:
        message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)


class _ImportFileAction(argparse.Action):
    """``--register-file PATH``: import PATH as soon as it is parsed (once per process), so the
    backbones or datasets it registers exist before the config is checked and the model built."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        try:
            import_user_files([values])
        except FileNotFoundError as e:
            parser.error(f"{option_string}: {e}")
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), values])


def add_register_file_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--register-file FILE`` (repeatable): python files imported while the command line is
    parsed, before the config is loaded (custom backbones, datasets)."""
    parser.add_argument(
        "--register-file",
        dest="register_files",
        action=_ImportFileAction,
        default=[],
        metavar="FILE",
        help="python file to import first, e.g. one that registers a custom backbone "
        "(@registry.BACKBONES.register(...)) or datasets; may be repeated",
    )


def launch_argument_parser(
    description: str, parser: argparse.ArgumentParser | None = None
) -> argparse.ArgumentParser:
    """The arguments every launcher-compatible tool takes: --config-file, --register-file (any
    number), --local_rank / --local-rank (set by ``torch.distributed.launch``; torchrun sets
    $LOCAL_RANK instead) and trailing ``KEY VALUE`` config overrides. Tools add their own flags
    before parsing. ``parser``: add the arguments to this parser (an ``fcos`` subcommand's)
    instead of a new one."""
    parser = parser or argparse.ArgumentParser(description=description)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to a yaml config")
    add_register_file_argument(parser)
    parser.add_argument(
        "--local_rank",
        "--local-rank",
        dest="local_rank",
        type=int,
        default=None,
        help="set by torch.distributed.launch (default: $LOCAL_RANK)",
    )
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="config overrides as KEY VALUE pairs"
    )
    return parser
