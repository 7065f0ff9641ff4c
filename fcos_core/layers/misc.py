"""Small building-block modules: frozen batch norm and a learnable scalar scale.

Dimension key: N images, C channels, H height, W width.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

_BN_EXTRA_KEY = "num_batches_tracked"


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d whose statistics and affine parameters are fixed buffers.

    Computes ``y = x * scale + (bias - running_mean * scale)`` with
    ``scale = weight / sqrt(running_var + eps)``. No buffer is updated and nothing is trained, as
    in maskrcnn-benchmark's ResNet backbones (``eps=0`` there).

    Args:
        num_features: number of channels C.
        eps: added to the variance before the square root.
    """

    def __init__(self, num_features: int, eps: float = 0.0) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` (Tensor[N, C, H, W]) channel-wise; returns Tensor[N, C, H, W]."""
        if not x.requires_grad and x.dtype == self.weight.dtype:
            # No gradient to carry (inference): one fused pass instead of mul + add.
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias,
                training=False, eps=self.eps,
            )  # fmt: skip
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        scale = scale.reshape(1, -1, 1, 1).to(x.dtype)  # (1, C, 1, 1)
        shift = shift.reshape(1, -1, 1, 1).to(x.dtype)  # (1, C, 1, 1)
        return x * scale + shift

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Checkpoints saved from nn.BatchNorm2d carry a counter we have no use for.
        state_dict.pop(prefix + _BN_EXTRA_KEY, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class Scale(nn.Module):
    """Multiplies its input by one learnable scalar (FCOS's per-level regression scale).

    Args:
        init_value: initial value of the parameter ``scale`` (shape [1]).
    """

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([init_value], dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``x * scale`` with the shape of ``x``."""
        return x * self.scale
