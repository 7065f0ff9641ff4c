"""Loads the compiled ``fcos_core._C`` ops and registers their autograd and fake kernels.

The C++ library defines the schemas (``csrc/ops.cpp``) and the CPU/CUDA kernels. Here, and only
after the extension has loaded, we attach autograd to ``fcos::sigmoid_focal_loss`` and fake (meta)
kernels for ``torch.compile``. When the extension cannot be loaded, or ``FCOS_DISABLE_EXT=1`` is
set, ``HAS_EXT`` is False and the wrappers in ``nms.py`` / ``sigmoid_focal_loss.py`` use their
pure-PyTorch reference functions. One warning says so; importing never fails.
"""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Any

import torch
from torch import Tensor

DISABLE_ENV_VAR = "FCOS_DISABLE_EXT"
EXTENSION_MODULE = "fcos_core._C"
_FALSE_VALUES = ("", "0", "false", "no", "off")


def _load_extension() -> tuple[bool, str]:
    """Imports the extension; returns (loaded, reason it was not loaded)."""
    flag = os.environ.get(DISABLE_ENV_VAR, "")
    if flag.strip().lower() not in _FALSE_VALUES:
        return False, f"{DISABLE_ENV_VAR}={flag} is set"
    try:
        importlib.import_module(EXTENSION_MODULE)
    except (ImportError, OSError) as exc:
        return False, f"{EXTENSION_MODULE} could not be loaded: {exc}"
    if not hasattr(torch.ops.fcos, "nms"):
        return False, f"{EXTENSION_MODULE} loaded but registered no fcos::nms op"
    return True, ""


HAS_EXT, EXT_UNAVAILABLE_REASON = _load_extension()

if not HAS_EXT:
    warnings.warn(
        "fcos_core: using the pure-PyTorch reference NMS and sigmoid focal loss "
        f"({EXT_UNAVAILABLE_REASON}). Build the extension with "
        "`pip install --no-build-isolation -e .` for the fast kernels.",
        RuntimeWarning,
        stacklevel=2,
    )


def _nms_fake(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    offset: float = 0.0,
    suppress_equal: bool = False,
) -> Tensor:
    """Fake kernel: the number of kept boxes is data dependent, a new dynamic size."""
    torch._check(boxes.dim() == 2 and boxes.shape[1] == 4, lambda: "nms: boxes must be [N, 4]")
    torch._check(scores.dim() == 1, lambda: "nms: scores must be [N]")
    torch._check(boxes.shape[0] == scores.shape[0], lambda: "nms: boxes/scores length differ")
    num_kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((num_kept,), dtype=torch.long)


def _focal_fake(logits: Tensor, targets: Tensor, gamma: float, alpha: float) -> Tensor:
    torch._check(logits.dim() == 2, lambda: "sigmoid_focal_loss: logits must be [R, C]")
    torch._check(targets.dim() == 1, lambda: "sigmoid_focal_loss: targets must be [R]")
    torch._check(logits.shape[0] == targets.shape[0], lambda: "sigmoid_focal_loss: R differs")
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _focal_backward_fake(
    logits: Tensor, targets: Tensor, grad_loss: Tensor, gamma: float, alpha: float
) -> Tensor:
    torch._check(grad_loss.shape == logits.shape, lambda: "grad_loss must match logits")
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _focal_setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    logits, targets, gamma, alpha = inputs
    ctx.save_for_backward(logits, targets)
    ctx.gamma = gamma
    ctx.alpha = alpha


def _focal_backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, None, None, None]:
    logits, targets = ctx.saved_tensors
    grad_logits = None
    if ctx.needs_input_grad[0]:
        grad_logits = torch.ops.fcos._sigmoid_focal_loss_backward(
            logits, targets, grad_loss, ctx.gamma, ctx.alpha
        )
    return grad_logits, None, None, None


def _register() -> None:
    torch.library.register_fake("fcos::nms", _nms_fake)
    torch.library.register_fake("fcos::sigmoid_focal_loss", _focal_fake)
    torch.library.register_fake("fcos::_sigmoid_focal_loss_backward", _focal_backward_fake)
    torch.library.register_autograd(
        "fcos::sigmoid_focal_loss", _focal_backward, setup_context=_focal_setup_context
    )


if HAS_EXT:
    _register()
