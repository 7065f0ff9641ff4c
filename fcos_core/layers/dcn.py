"""Deformable convolution (DCNv1 and modulated DCNv2) on top of `torchvision.ops.deform_conv2d`.

Dimension key: N images, C_in / C_out channels, H x W input size, H' x W' output size,
G deformable groups, K = kernel_h * kernel_w sampling points.

The module keeps the parameter layout of the original FCOS / maskrcnn-benchmark `DFConv2d`, so
official checkpoints load unchanged:

- ``offset``: a plain conv producing ``G * 3 * K`` channels (modulated: 2K offsets + K masks per
  group) or ``G * 2 * K`` channels (plain DCN), with a bias;
- ``conv``: holds the deformable kernel ``weight`` (and ``bias`` when asked for).

Offsets are interleaved (dy, dx) per sampling point, the layout both the original CUDA kernel and
torchvision use.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torchvision.ops import deform_conv2d

# Channels the offset conv produces per deformable group and sampling point.
_OFFSET_CHANNELS_PER_POINT = 2
_MASK_CHANNELS_PER_POINT = 1


class ModulatedDeformConv(nn.Module):
    """Deformable 2d convolution whose offsets (and masks) are predicted from its own input.

    With ``modulated=True`` this is DCNv2 (offsets plus a sigmoid modulation mask); with
    ``modulated=False`` it is DCNv1 (offsets only).

    Initialisation as the original's ``DFConv2d``: the offset conv Kaiming-uniform (a=1) with a
    zero bias (so training starts from small random offsets, not the regular grid), the
    deformable kernel uniform in +-1/sqrt(C_in * K) (C_in not divided by the groups) with a zero
    bias. The FCOS head re-initialises the offset conv as its other convs (normal, std 0.01).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = False,
        modulated: bool = True,
    ) -> None:
        """Create the offset conv and the deformable kernel.

        Args:
            in_channels: C_in.
            out_channels: C_out.
            kernel_size: square kernel size k (K = k * k).
            stride: convolution stride.
            padding: zero padding; None means ``dilation * (kernel_size - 1) // 2`` ("same").
            dilation: kernel dilation.
            groups: convolution groups (ResNeXt); C_in and C_out must be divisible by it.
            deformable_groups: G, channel groups sharing one set of offsets.
            bias: whether ``conv`` has a bias.
            modulated: DCNv2 (True) or DCNv1 (False).
        """
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"ModulatedDeformConv: in_channels ({in_channels}) and out_channels "
                f"({out_channels}) must be divisible by groups ({groups})"
            )
        if in_channels % deformable_groups:
            raise ValueError(
                f"ModulatedDeformConv: in_channels ({in_channels}) must be divisible by "
                f"deformable_groups ({deformable_groups})"
            )
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        self.modulated = modulated
        self.deformable_groups = deformable_groups
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        points = kernel_size * kernel_size
        per_point = _OFFSET_CHANNELS_PER_POINT + (_MASK_CHANNELS_PER_POINT if modulated else 0)
        self.num_offset_channels = deformable_groups * _OFFSET_CHANNELS_PER_POINT * points
        self.offset = nn.Conv2d(
            in_channels,
            deformable_groups * per_point * points,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=True,
        )
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.reset_parameters(in_channels, points)

    def reset_parameters(self, in_channels: int, points: int) -> None:
        """The original DFConv2d's init (see the class docstring)."""
        nn.init.kaiming_uniform_(self.offset.weight, a=1)
        nn.init.zeros_(self.offset.bias)
        bound = 1.0 / math.sqrt(in_channels * points)
        nn.init.uniform_(self.conv.weight, -bound, bound)
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the deformable convolution.

        Args:
            x: Tensor[N, C_in, H, W].

        Returns:
            Tensor[N, C_out, H', W'].
        """
        offset_mask = self.offset(x)  # (N, G * (2 or 3) * K, H', W')
        offset = offset_mask[:, : self.num_offset_channels]  # (N, G * 2K, H', W')
        mask = None
        if self.modulated:
            mask = offset_mask[:, self.num_offset_channels :].sigmoid()  # (N, G * K, H', W')
        weight = self.conv.weight
        # deform_conv2d has no autocast rule: run it in the kernel's dtype.
        return deform_conv2d(
            x.to(weight.dtype),
            offset.to(weight.dtype),
            weight,
            self.conv.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=None if mask is None else mask.to(weight.dtype),
        )

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return f"modulated={self.modulated}, deformable_groups={self.deformable_groups}"


__all__ = ["ModulatedDeformConv"]
