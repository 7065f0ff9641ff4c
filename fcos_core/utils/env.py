"""Device resolution and seeding."""

from __future__ import annotations

import ctypes
import logging
import random

import numpy as np
import torch

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
