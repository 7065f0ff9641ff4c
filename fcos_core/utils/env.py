"""Environment set-up (the original ``fcos_core.utils.env`` API), device resolution and seeding.

``setup_environment()`` runs when this module is first imported, as in the original: when the
``TORCH_DETECTRON_ENV_MODULE`` environment variable names a Python file, that file is imported
and its ``setup_environment()`` function is called (site-specific paths, registrations, ...);
otherwise nothing happens.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random

import numpy as np
import torch

from fcos_core.utils.imports import import_file

# Environment variable naming a Python file with a ``setup_environment()`` function.
ENV_MODULE_VARIABLE = "TORCH_DETECTRON_ENV_MODULE"
CUSTOM_MODULE_NAME = "fcos_core.utils.env.custom_module"


def setup_environment() -> None:
    """Run the custom set-up named by ``$TORCH_DETECTRON_ENV_MODULE``, if set (else a no-op)."""
    custom_module_path = os.environ.get(ENV_MODULE_VARIABLE)
    if custom_module_path:
        setup_custom_environment(custom_module_path)


def setup_custom_environment(custom_module_path: str) -> None:
    """Import the Python file ``custom_module_path`` and call its ``setup_environment()``.

    Raises:
        FileNotFoundError: the file does not exist.
        AttributeError: it defines no callable ``setup_environment``.
    """
    module = import_file(CUSTOM_MODULE_NAME, custom_module_path)
    setup = getattr(module, "setup_environment", None)
    if not callable(setup):
        raise AttributeError(
            f"custom environment module {custom_module_path} (from ${ENV_MODULE_VARIABLE}) has no "
            "callable setup_environment()"
        )
    setup()


_warned_devices: set[str] = set()


def resolve_device(name: str) -> str:
    """Map a requested device to one that exists on this machine.

    Args:
        name: "cpu", "cuda" or "cuda:N" (cfg.MODEL.DEVICE).

    Returns:
        ``name`` unchanged when usable; "cpu" when CUDA was asked for but is unavailable
        (logged once per requested name).
    """
    if name.startswith("cuda") and not torch.cuda.is_available():
        if name not in _warned_devices:
            _warned_devices.add(name)
            logging.getLogger(__name__).info(
                "MODEL.DEVICE is %r but CUDA is not available: using cpu", name
            )
        return "cpu"
    return name


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (all devices) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# glibc mallopt parameters and the value used for both: CPU training allocates and frees the same
# large activation buffers every iteration; above the (dynamic, at most 32 MB) mmap threshold each
# one is a fresh mmap with page faults, which makes the first iterations several times slower.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MALLOC_THRESHOLD_BYTES = 512 * 1024 * 1024


def tune_malloc_for_cpu_training() -> bool:
    """Keep freed tensor memory in the heap (glibc only; a no-op elsewhere).

    Returns:
        True if the thresholds were set.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_THRESHOLD_BYTES) == 1
        return ok and libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_THRESHOLD_BYTES) == 1
    except (OSError, AttributeError):
        return False


# As in the original: the custom environment is set up when this module is first imported.
setup_environment()
