"""Config validation that turns user mistakes into one-line errors.

``merge_file`` / ``merge_opts`` merge a yaml file and ``KEY VALUE`` overrides into a config;
``check_choice`` and ``check_values`` check enum values and numbers. Every problem raises
:class:`ConfigError` with one line that names the key, the bad value and what is allowed (with a
"did you mean" suggestion for misspelt keys). This module imports nothing above ``config/``:
the command-line front door that gathers the builders' name tables (``load_config``,
``run_cli``, ``launch_argument_parser``) is ``fcos_core.engine.defaults``.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
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
        current = get_value(cfg, key)
        parsed = ast.literal_eval(value)
    except (KeyError, ValueError, SyntaxError, TypeError):
        return value
    if isinstance(current, float) and isinstance(parsed, int) and not isinstance(parsed, bool):
        return repr(float(parsed))
    return value


def get_value(cfg: CfgNode, key: str) -> Any:
    """The value of dotted config key ``key`` (e.g. ``"MODEL.FCOS.NUM_CLASSES"``)."""
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def one_of_message(key: str, value: Any, allowed: Iterable[Any]) -> str:
    """``"{key} must be one of a, b, c, got 'x'. Did you mean a?"`` (closest match named)."""
    allowed = tuple(allowed)
    names = [a if isinstance(a, str) and a else repr(a) for a in allowed]
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]}?" if close else ""
    return f"{key} must be one of {', '.join(names)}, got {value!r}.{hint}"


def check_choice(key: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` of ``key`` (a config key, or an argument) is one of ``allowed``; returns it. The
    one enum check of the package.

    Raises:
        ConfigError: (a ValueError) with :func:`one_of_message`.
    """
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(one_of_message(key, value, allowed))
    return value


def check_values(cfg: CfgNode, choices: Mapping[str, Iterable[Any]]) -> None:
    """Enum keys hold allowed values (``choices``: key -> allowed values); device and solver
    numbers make sense."""
    for key, allowed in choices.items():
        check_choice(key, get_value(cfg, key), allowed)
    if not DEVICE_PATTERN.match(cfg.MODEL.DEVICE):
        raise ConfigError(f"MODEL.DEVICE must be cpu, cuda or cuda:N, got {cfg.MODEL.DEVICE!r}")
    for key in (
        "SOLVER.MAX_ITER",
        "SOLVER.IMS_PER_BATCH",
        "TEST.IMS_PER_BATCH",
        "SOLVER.CHECKPOINT_PERIOD",
    ):
        if get_value(cfg, key) <= 0:
            raise ConfigError(f"{key} must be positive, got {get_value(cfg, key)}")
    steps = list(cfg.SOLVER.STEPS)
    if steps != sorted(steps):
        raise ConfigError(f"SOLVER.STEPS must be increasing, got {steps}")
