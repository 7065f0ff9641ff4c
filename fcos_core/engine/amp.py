"""Mixed precision settings: fp16 + GradScaler on CUDA, bf16 autocast on CPU (AMP.*)."""

from __future__ import annotations

import contextlib

import torch
from yacs.config import CfgNode

from fcos_core.config.checks import check_choice

AMP_DTYPES = {"auto": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def amp_dtype(cfg: CfgNode, device_type: str) -> torch.dtype | None:
    """Autocast dtype for ``device_type`` ("cpu" / "cuda"), or None when AMP is off.

    Raises:
        ValueError: unknown ``AMP.DTYPE``.
    """
    if not cfg.AMP.ENABLED:
        return None
    dtype = AMP_DTYPES[check_choice("AMP.DTYPE", cfg.AMP.DTYPE, AMP_DTYPES)]
    if dtype is None:
        dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
    return dtype


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


def make_grad_scaler(cfg: CfgNode, device_type: str) -> torch.amp.GradScaler | None:
    """A GradScaler when training in float16 (bf16 and fp32 need none), else None."""
    return (
        torch.amp.GradScaler(device_type) if amp_dtype(cfg, device_type) == torch.float16 else None
    )
