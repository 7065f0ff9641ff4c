"""The one vocabulary of compute precisions, and which one "auto" means on this machine.

Values (torch's dtype names), used by ``AMP.DTYPE``, ``TEST.FAST_PATH_AUTOCAST`` and the
``--autocast`` flags alike:

- ``"float32"``: no autocast;
- ``"bfloat16"`` / ``"float16"``: ``torch.autocast`` to that dtype;
- ``"auto"``: float16 on CUDA; on CPU bfloat16 when the CPU computes bfloat16 natively
  (AMX-BF16 or AVX512-BF16, read from the CPU's feature flags, never guessed from its name),
  else float32 (emulated bfloat16 is slower than float32).

Autocast keeps parameters (and so the optimizer's state) in float32 and casts copies for the
ops it lowers; results that must stay exact (losses) are computed in float32 by their owners.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import torch

from fcos_core.config.checks import check_choice

# Precision name -> torch dtype; "auto" is resolved per device by `autocast_dtype`.
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
AUTO = "auto"
PRECISIONS: tuple[str, ...] = (*DTYPES, AUTO)
# CPU feature flags (torch's capability names, also /proc/cpuinfo's) that mean native bfloat16.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = "/proc/cpuinfo"

logger = logging.getLogger(__name__)


def check_precision(key: str, value: str) -> str:
    """``value`` of ``key`` is one of :data:`PRECISIONS`; returns it.

    Raises:
        ConfigError: (a ValueError) naming ``key``, ``value`` and the allowed values.
    """
    return check_choice(key, value, PRECISIONS)


def cpu_capability() -> Mapping[str, Any]:
    """This CPU's feature flags: torch's own query, else the flags line of /proc/cpuinfo."""
    query = getattr(getattr(torch._C, "_cpu", None), "_get_cpu_capability", None)
    if query is not None:
        try:
            return dict(query())
        except RuntimeError:
            pass
    try:
        with open(CPUINFO) as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return {}
    return {flag: True for flag in flags.partition(":")[2].split()}


def cpu_has_native_bf16(capability: Mapping[str, Any] | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16).

    Args:
        capability: feature flags (name -> truthy) to judge instead of this CPU's (tests).
    """
    if capability is None:
        if not torch.backends.mkldnn.is_available():
            return False  # torch's bfloat16 convs and matmuls go through oneDNN
        capability = cpu_capability()
    return any(bool(capability.get(flag)) for flag in NATIVE_BF16_FLAGS)


def autocast_dtype(
    key: str, value: str, device_type: str, *, native_bf16: bool | None = None
) -> torch.dtype | None:
    """The autocast dtype that ``value`` of ``key`` means on ``device_type``, None for float32.

    Args:
        key: the config key or flag, for messages.
        value: one of :data:`PRECISIONS`.
        device_type: "cpu" or "cuda".
        native_bf16: whether the CPU has native bfloat16 (default: :func:`cpu_has_native_bf16`).

    Raises:
        ConfigError: (a ValueError) ``value`` is not one of :data:`PRECISIONS`.
    """
    check_precision(key, value)
    if value == AUTO:
        if device_type != "cpu":
            return torch.float16
        if native_bf16 is None:
            native_bf16 = cpu_has_native_bf16()
        if not native_bf16:
            _log_once(
                f"{key} auto: float32, this CPU has no native bfloat16 (AMX-BF16 / AVX512-BF16)"
            )
            return None
        return torch.bfloat16
    dtype = DTYPES[value]
    return None if dtype == torch.float32 else dtype


@functools.cache
def _log_once(message: str) -> None:
    logger.info(message)


__all__ = [
    "AUTO",
    "DTYPES",
    "NATIVE_BF16_FLAGS",
    "PRECISIONS",
    "autocast_dtype",
    "check_precision",
    "cpu_capability",
    "cpu_has_native_bf16",
]
