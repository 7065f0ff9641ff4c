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
        scale, shift = self.scale_shift()
        scale = scale.reshape(1, -1, 1, 1).to(x.dtype)  # (1, C, 1, 1)
        shift = shift.reshape(1, -1, 1, 1).to(x.dtype)  # (1, C, 1, 1)
        return x * scale + shift

    def scale_shift(self) -> tuple[Tensor, Tensor]:
        """(scale, shift), each Tensor[C], with ``y = x * scale + shift``."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Checkpoints saved from nn.BatchNorm2d carry a counter we have no use for.
        state_dict.pop(prefix + _BN_EXTRA_KEY, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def conv_then_norm(conv: nn.Module, norm: nn.Module, x: Tensor) -> Tensor:
    """``norm(conv(x))``, in one conv when ``norm`` is frozen and ``conv`` a plain nn.Conv2d.

    The frozen norm is applied to the conv's weights (``W * scale``, bias ``b * scale + shift``),
    which are small, instead of to its output, which is large: one pass over the feature map
    fewer forward and backward, and one feature-sized allocation fewer. Equal to the two-step
    form up to float rounding; gradients reach ``conv.weight`` (and ``conv.bias``) unchanged in
    meaning. Forward hooks registered on ``conv`` or ``norm`` do not run on this path.

    Args:
        conv: the conv; Tensor[N, C_in, H, W] -> Tensor[N, C, H', W'].
        norm: the norm over its C output channels (any module; only FrozenBatchNorm2d is fused).
        x: the conv's input.
    """
    if type(conv) is not nn.Conv2d or not isinstance(norm, FrozenBatchNorm2d):
        return norm(conv(x))
    if conv.padding_mode != "zeros":
        return norm(conv(x))
    scale, shift = norm.scale_shift()
    weight = conv.weight * scale.to(conv.weight.dtype).reshape(-1, 1, 1, 1)
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return F.conv2d(x, weight, bias.to(weight.dtype), conv.stride, conv.padding, conv.dilation,
                    conv.groups)  # fmt: skip


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
