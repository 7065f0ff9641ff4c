"""Optional features and the ``pip`` extra that provides each one.

The core install (``pip install .``) trains, evaluates, detects and plots. A few features need
packages from an extra; :func:`require` imports such a package, or raises
:class:`MissingExtraError` with the exact ``pip install`` line instead of a bare
``ModuleNotFoundError`` deep inside a run.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# import name -> (extra of pyproject.toml, distribution name)
EXTRAS: dict[str, tuple[str, str]] = {
    "onnx": ("export", "onnx"),
    "onnxruntime": ("export", "onnxruntime"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "faster_coco_eval": ("faster-coco-eval", "faster-coco-eval"),
}


class MissingExtraError(ImportError):
    """A feature's optional package is not installed; the message says what to install."""


def install_hint(module: str) -> str:
    """``pip install 'fcos[extra]'`` (from a clone: ``pip install '.[extra]'``) for ``module``."""
    if module not in EXTRAS:
        raise KeyError(f"{module!r} is not an optional package; known: {', '.join(EXTRAS)}")
    extra, dist = EXTRAS[module]
    return (
        f"pip install 'fcos[{extra}]' (in a clone: pip install '.[{extra}]'; or pip install {dist})"
    )


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (a key of :data:`EXTRAS`) for ``feature``.

    Raises:
        MissingExtraError: the package is missing; the message names the feature and the extra.
    """
    hint = install_hint(module)
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"{feature} needs the {module} package: {hint}") from e
