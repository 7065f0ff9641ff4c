"""Config and command-line checks that turn user mistakes into one-line errors.

``load_config(config_file, opts)`` merges a yaml file and ``KEY VALUE`` overrides into a clone of
the defaults, then checks enum values and dataset names. Every problem raises
:class:`ConfigError` with one line that names the key, the bad value and what is allowed (with a
"did you mean" suggestion for misspelt keys). ``run_cli(main)`` prints such errors, and the other
user-facing errors listed in ``USER_ERRORS``, as ``error: ...`` and exits with status 2, instead
of a traceback.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import yaml
from yacs.config import CfgNode

EXIT_USER_ERROR = 2
# The clone's root folder (it holds configs/ and fcos_core/).
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?)$")


class ConfigError(ValueError):
    """A config file, override or value the user must fix."""


def all_keys(node: CfgNode, prefix: str = "") -> Iterator[str]:
    """Every full key (``SOLVER.BASE_LR``) of ``node``."""
    for key, value in node.items():
        full = f"{prefix}{key}"
        if isinstance(value, CfgNode):
            yield from all_keys(value, full + ".")
        else:
            yield full


def suggest_key(bad_key: str, node: CfgNode) -> str:
    """ " Did you mean X?" for the closest valid key, or ""."""
    keys = list(all_keys(node))
    close = difflib.get_close_matches(bad_key, keys, n=1, cutoff=0.6)
    if not close:
        leaf = bad_key.rsplit(".", 1)[-1]
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in keys}
        leaf_close = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.75)
        close = [by_leaf[leaf_close[0]]] if leaf_close else []
    return f" Did you mean {close[0]}?" if close else ""


def _translate_yacs_error(error: Exception, where: str, base: CfgNode) -> ConfigError:
    message = str(error.args[0]) if error.args else str(error)
    unknown = re.match(r"Non-existent (?:config )?key: (\S+)", message)
    if unknown:
        key = unknown.group(1)
        return ConfigError(f"{where}: unknown config key {key}.{suggest_key(key, base)}")
    mismatch = re.match(
        r"Type mismatch \((.+) vs\. (.+)\) with values \((.*) vs\. (.*)\) for config key: (\S+)",
        message,
    )
    if mismatch:
        expected, _, default, given, key = mismatch.groups()
        expected = re.sub(r"<class '(\w+)'>", r"\1", expected)
        return ConfigError(
            f"{where}: {key} must be of type {expected} (like the default {default}), got {given}"
        )
    return ConfigError(f"{where}: {message}")


def _ints_to_floats(node: CfgNode, base: CfgNode) -> None:
    """Turn ints given for float keys into floats (yacs would reject ``BASE_LR: 1``)."""
    for key, value in node.items():
        target = base.get(key) if isinstance(base, CfgNode) else None
        if isinstance(value, CfgNode) and isinstance(target, CfgNode):
            _ints_to_floats(value, target)
        elif isinstance(target, float) and isinstance(value, int) and not isinstance(value, bool):
            node[key] = float(value)


def find_config_file(path: str) -> str:
    """``path`` if it exists, else the same relative path under the project root (so
    ``configs/fcos/...`` works from any folder), else ``path`` unchanged."""
    if not path or os.path.isfile(path) or os.path.isabs(path):
        return path
    candidate = os.path.join(PROJECT_ROOT, path)
    return candidate if os.path.isfile(candidate) else path


def merge_file(cfg: CfgNode, config_file: str) -> None:
    """Merge a yaml file into ``cfg``, raising :class:`ConfigError` on any problem."""
    config_file = find_config_file(config_file)
    if not os.path.isfile(config_file):
        raise ConfigError(f"config file not found: {config_file}")
    try:
        with open(config_file) as f:
            loaded = cfg.load_cfg(f)
        _ints_to_floats(loaded, cfg)
        cfg.merge_from_other_cfg(loaded)
    except (KeyError, ValueError, AssertionError) as e:
        raise _translate_yacs_error(e, config_file, cfg) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{config_file}: not valid YAML ({str(e).splitlines()[0]})") from None


def merge_opts(cfg: CfgNode, opts: list[str]) -> None:
    """Merge ``KEY VALUE`` pairs from the command line into ``cfg``."""
    if len(opts) % 2:
        raise ConfigError(
            f"command-line overrides must be KEY VALUE pairs; {opts[-1]!r} has no value"
        )
    opts = list(opts)
    for i in range(0, len(opts), 2):
        opts[i + 1] = _float_literal_if_needed(cfg, opts[i], opts[i + 1])
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError) as e:
        raise _translate_yacs_error(e, "command line", cfg) from None


def _float_literal_if_needed(cfg: CfgNode, key: str, value: str) -> str:
    """ "1" for a float key becomes "1.0" (yacs would reject the int)."""
    try:
        current = _get(cfg, key)
        parsed = ast.literal_eval(value)
    except (KeyError, ValueError, SyntaxError, TypeError):
        return value
    if isinstance(current, float) and isinstance(parsed, int) and not isinstance(parsed, bool):
        return repr(float(parsed))
    return value


def enum_choices() -> dict[str, tuple[str, ...]]:
    """Config key -> allowed values, read from the builders' own name tables."""
    from fcos_core.data.evaluation.coco_eval import COCO_BACKENDS
    from fcos_core.engine.amp import AMP_DTYPES
    from fcos_core.engine.trainer import NONFINITE_POLICIES
    from fcos_core.layers.iou_loss import LOSS_TYPES
    from fcos_core.modeling.backbone.backbone import BACKBONES
    from fcos_core.modeling.backbone.resnet import STEM_FUNCS, TRANS_FUNCS
    from fcos_core.modeling.detector import META_ARCHITECTURES
    from fcos_core.modeling.fcos.inference_core import DETECTIONS_PER_IMG_TIES
    from fcos_core.solver.build import OPTIMIZERS
    from fcos_core.solver.lr_scheduler import WARMUP_METHODS
    from fcos_core.structures.box_convention import BOX_CONVENTIONS

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
        "AMP.DTYPE": tuple(AMP_DTYPES),
        "TEST.COCO_EVAL_BACKEND": tuple(COCO_BACKENDS),
        "TEST.DETECTIONS_PER_IMG_TIES": DETECTIONS_PER_IMG_TIES,
    }


def _get(cfg: CfgNode, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def check_values(cfg: CfgNode) -> None:
    """Enum keys hold allowed values; device and solver numbers make sense."""
    for key, allowed in enum_choices().items():
        value = _get(cfg, key)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}.{hint}")
    if not DEVICE_PATTERN.match(cfg.MODEL.DEVICE):
        raise ConfigError(f"MODEL.DEVICE must be cpu, cuda or cuda:N, got {cfg.MODEL.DEVICE!r}")
    for key in (
        "SOLVER.MAX_ITER",
        "SOLVER.IMS_PER_BATCH",
        "TEST.IMS_PER_BATCH",
        "SOLVER.CHECKPOINT_PERIOD",
    ):
        if _get(cfg, key) <= 0:
            raise ConfigError(f"{key} must be positive, got {_get(cfg, key)}")
    steps = list(cfg.SOLVER.STEPS)
    if steps != sorted(steps):
        raise ConfigError(f"SOLVER.STEPS must be increasing, got {steps}")


def check_datasets(cfg: CfgNode) -> None:
    """Every DATASETS.TRAIN / TEST name is in the catalog (after DATASETS.REGISTER)."""
    from fcos_core.data.build import load_catalog

    try:
        catalog = load_catalog(cfg)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from None
    known = catalog.DatasetCatalog.names()
    for key in ("DATASETS.TRAIN", "DATASETS.TEST"):
        for name in _get(cfg, key):
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
    check_values(cfg)
    check_datasets(cfg)
    return cfg


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a tool reports as one line: the user's input is wrong, not the code."""
    from fcos_core.config.paths_catalog import DatasetNotFoundError
    from fcos_core.engine.trainer import NonFiniteLossError
    from fcos_core.utils.extras import MissingExtraError
    from fcos_core.utils.safe_io import CheckpointLoadError

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
        from fcos_core.utils.imports import import_user_files

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
