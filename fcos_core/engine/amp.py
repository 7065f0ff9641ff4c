"""Mixed precision of training and inference (AMP.*): autocast to the dtype AMP.DTYPE names
(`fcos_core.utils.precision`), and a GradScaler when that dtype is float16."""

from __future__ import annotations

import contextlib

import torch
from yacs.config import CfgNode

from fcos_core.utils.precision import autocast_dtype, check_precision


def amp_dtype(
    cfg: CfgNode, device_type: str, *, native_bf16: bool | None = None
) -> torch.dtype | None:
    """Autocast dtype for ``device_type`` ("cpu" / "cuda"), or None when AMP is off or float32.

    ``AMP.DTYPE auto``: float16 on CUDA; bfloat16 on a CPU with native bfloat16, else float32.

    Args:
        native_bf16: whether the CPU has native bfloat16 (default: detected).

    Raises:
        ValueError: ``AMP.DTYPE`` is not one of float32, bfloat16, float16, auto.
    """
    check_precision("AMP.DTYPE", cfg.AMP.DTYPE)
    if not cfg.AMP.ENABLED:
        return None
    return autocast_dtype("AMP.DTYPE", cfg.AMP.DTYPE, device_type, native_bf16=native_bf16)


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


def build_grad_scaler(cfg: CfgNode, device_type: str) -> torch.amp.GradScaler | None:
    """A GradScaler when training in float16 (bfloat16 and float32 need none), else None."""
    return (
        torch.amp.GradScaler(device_type) if amp_dtype(cfg, device_type) == torch.float16 else None
    )
