"""Sigmoid focal loss over integer class targets: our ``fcos::sigmoid_focal_loss`` op.

Dimension key: R points (rows), C foreground classes (channels).
Targets: 0 = background, k in 1..C = positive for channel k - 1, -1 = ignored (no loss, no grad).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fcos_core.layers import _ops

IGNORE_LABEL = -1


def check_focal_inputs(logits: Tensor, targets: Tensor) -> None:
    """Raises ValueError/TypeError naming the offending shape or dtype."""
    if logits.dim() != 2:
        raise ValueError(
            f"sigmoid_focal_loss: logits must have shape [R, C], got {list(logits.shape)}"
        )
    if targets.dim() != 1:
        raise ValueError(
            f"sigmoid_focal_loss: targets must have shape [R], got {list(targets.shape)}"
        )
    if logits.shape[0] != targets.shape[0]:
        raise ValueError(
            f"sigmoid_focal_loss: logits {list(logits.shape)} and targets "
            f"{list(targets.shape)} differ in length R"
        )
    if not logits.is_floating_point():
        raise TypeError(f"sigmoid_focal_loss: logits must be floating point, got {logits.dtype}")
    if targets.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"sigmoid_focal_loss: targets must be int32 or int64, got {targets.dtype}")


def sigmoid_focal_loss_reference(
    logits: Tensor, targets: Tensor, gamma: float, alpha: float
) -> Tensor:
    """Pure-PyTorch per-element focal loss (test oracle and fallback).

    float16/bfloat16 are computed in float32, float64 in float64.

    Args:
        logits: Tensor[R, C].
        targets: Tensor[R] int, 0 background, 1..C class, -1 ignored.
        gamma: focusing exponent.
        alpha: weight of positives; negatives get 1 - alpha.

    Returns:
        Tensor[R, C] in the dtype of ``logits``.
    """
    x = logits if logits.dtype == torch.float64 else logits.float()
    classes = torch.arange(1, x.shape[1] + 1, device=x.device)  # (C,)
    positive = targets[:, None] == classes[None, :]  # (R, C)
    prob = torch.sigmoid(x)
    log_p = -F.softplus(-x)  # log(sigmoid(x)), stable
    log_not_p = -F.softplus(x)  # log(1 - sigmoid(x)), stable
    pos_loss = -alpha * (1.0 - prob).pow(gamma) * log_p
    neg_loss = -(1.0 - alpha) * prob.pow(gamma) * log_not_p
    loss = torch.where(positive, pos_loss, neg_loss)
    ignored = (targets == IGNORE_LABEL)[:, None]  # (R, 1)
    loss = torch.where(ignored, torch.zeros_like(loss), loss)
    return loss.to(logits.dtype)


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, gamma: float, alpha: float) -> Tensor:
    """Per-element sigmoid focal loss (Lin et al. 2017) with integer class targets.

    Args:
        logits: Tensor[R, C] float32/float64/float16/bfloat16.
        targets: Tensor[R] int32/int64, 0 background, 1..C positive class, -1 ignored.
        gamma: focusing exponent (FCOS: 2.0).
        alpha: positive weight (FCOS: 0.25).

    Returns:
        Tensor[R, C] loss per element, dtype of ``logits``; differentiable w.r.t. ``logits``.
    """
    check_focal_inputs(logits, targets)
    if _ops.use_kernel("fcos::sigmoid_focal_loss", logits):
        return torch.ops.fcos.sigmoid_focal_loss(logits, targets, float(gamma), float(alpha))
    return sigmoid_focal_loss_reference(logits, targets, gamma, alpha)


class SigmoidFocalLoss(nn.Module):
    """Focal loss summed over all elements, as FCOS uses it (normalise outside).

    Args:
        gamma: focusing exponent.
        alpha: positive weight.
    """

    def __init__(self, gamma: float, alpha: float) -> None:
        super().__init__()
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Returns the scalar sum of ``sigmoid_focal_loss(logits[R, C], targets[R])``."""
        return sigmoid_focal_loss(logits, targets, self.gamma, self.alpha).sum()

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}"
