"""Import a Python module from a file path (the original ``fcos_core.utils.imports`` API)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from types import ModuleType


def import_file(module_name: str, file_path: str, make_importable: bool = False) -> ModuleType:
    """Execute ``file_path`` as a module called ``module_name`` and return it.

    Args:
        module_name: name the module gets (``__name__`` inside it).
        file_path: a Python source file.
        make_importable: also put it in ``sys.modules`` so ``import module_name`` finds it.

    Raises:
        FileNotFoundError: ``file_path`` does not exist.
    """
    if not os.path.isfile(file_path):
        raise FileNotFoundError(f"cannot import {module_name!r}: file not found: {file_path}")
    spec = importlib.util.spec_from_file_location(module_name, file_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {module_name!r} from {file_path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    if make_importable:
        sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if make_importable:
            sys.modules.pop(module_name, None)
        raise
    return module


def user_module_name(file_path: str) -> str:
    """A module name unique to the absolute path of ``file_path``."""
    path = os.path.abspath(file_path)
    stem = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:12]
    return f"fcos_user_module_{stem}_{digest}"


def import_user_files(paths: Iterable[str]) -> list[ModuleType]:
    """Import each file once per process (e.g. modules that register custom backbones).

    A file imported before (same absolute path) is not run again, so its registrations are not
    repeated.
    """
    modules = []
    for path in paths:
        name = user_module_name(path)
        module = sys.modules.get(name)
        if module is None:
            module = import_file(name, path, make_importable=True)
        modules.append(module)
    return modules
