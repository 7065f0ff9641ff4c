"""Building blocks of the ResNet / ResNeXt bodies: stem, bottleneck and basic residual blocks.

Dimension key: N images, C_in / C_out channels, H x W input size.

Module names follow the original maskrcnn-benchmark ResNet (``conv1``/``bn1``/..., ``downsample.0``
and ``downsample.1``, the projection registered first), so official checkpoints load unchanged. A
deformable 3x3 conv is a `ModulatedDeformConv`, i.e. ``conv2.offset.*`` plus ``conv2.conv.weight``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from fcos_core.layers.dcn import ModulatedDeformConv
from fcos_core.layers.misc import conv_then_norm
from fcos_core.modeling.backbone.norm import GroupNormSpec, make_norm

# Stem: 7x7 stride-2 conv followed by a 3x3 stride-2 max-pool (total stride 4).
STEM_KERNEL = 7
STEM_STRIDE = 2
STEM_POOL_KERNEL = 3
STEM_POOL_STRIDE = 2


@dataclass(frozen=True)
class DeformSpec:
    """Deformable-convolution settings of one stage.

    Attributes:
        enabled: replace the block's 3x3 ``conv2`` by a deformable conv.
        modulated: DCNv2 (True) or DCNv1 (False).
        deformable_groups: offset groups.
    """

    enabled: bool = False
    modulated: bool = True
    deformable_groups: int = 1


NO_DEFORM = DeformSpec()


def init_conv_(conv: nn.Conv2d) -> None:
    """Kaiming-uniform (a=1) weights and zero bias, in place, as the original ResNet's convs.

    The bound is sqrt(3 / fan_in) (Caffe2's XavierFill, which maskrcnn-benchmark reproduces).
    """
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def init_basic_resnet_convs_(module: nn.Module) -> None:
    """Torchvision's conv init (Kaiming-normal, fan_out, ReLU) for ResNet-18/34, in place.

    The original has no basic-block ResNets; ours follow torchvision's, whose from-scratch
    recipes (e.g. the quickstart) were tuned with this init. Deformable convs keep their own.
    """
    deformable = {
        m
        for d in module.modules()
        if isinstance(d, ModulatedDeformConv)
        for m in (d.offset, d.conv)
    }
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d) and conv not in deformable:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)


def make_conv3x3(
    in_channels: int,
    out_channels: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    deform: DeformSpec = NO_DEFORM,
) -> nn.Module:
    """A bias-free 3x3 conv ("same" padding for stride 1), deformable when ``deform.enabled``.

    A deformable conv keeps its own init (the original's DFConv2d), like the original block.
    """
    if deform.enabled:
        return ModulatedDeformConv(
            in_channels,
            out_channels,
            kernel_size=3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            groups=groups,
            deformable_groups=deform.deformable_groups,
            bias=False,
            modulated=deform.modulated,
        )
    conv = nn.Conv2d(
        in_channels,
        out_channels,
        3,
        stride=stride,
        padding=dilation,
        dilation=dilation,
        groups=groups,
        bias=False,
    )
    init_conv_(conv)
    return conv


def make_conv1x1(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Conv2d:
    """A bias-free 1x1 conv with the backbone's weight init."""
    conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
    init_conv_(conv)
    return conv


def make_downsample(
    in_channels: int,
    out_channels: int,
    *,
    stride: int,
    norm: str,
    gn_spec: GroupNormSpec | None,
) -> nn.Sequential | None:
    """Projection shortcut (1x1 conv + norm) when the block changes width or resolution."""
    if in_channels == out_channels and stride == 1:
        return None
    return nn.Sequential(
        make_conv1x1(in_channels, out_channels, stride=stride),
        make_norm(norm, out_channels, gn_spec),
    )


def _shortcut(downsample: nn.Sequential | None, x: Tensor) -> Tensor:
    """The residual branch: ``x`` itself, or its projection (conv + norm)."""
    if downsample is None:
        return x
    return conv_then_norm(downsample[0], downsample[1], x)


class Stem(nn.Module):
    """ResNet stem: conv1 (7x7, stride 2) + bn1 + ReLU + 3x3 max-pool (stride 2)."""

    def __init__(
        self,
        *,
        out_channels: int,
        norm: str = "FrozenBN",
        gn_spec: GroupNormSpec | None = None,
        in_channels: int = 3,
    ) -> None:
        """Create the stem.

        Args:
            out_channels: stem width.
            norm: "FrozenBN", "BN" or "GN".
            gn_spec: GroupNorm grouping.
            in_channels: image channels.
        """
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels,
            out_channels,
            STEM_KERNEL,
            stride=STEM_STRIDE,
            padding=STEM_KERNEL // 2,
            bias=False,
        )
        init_conv_(self.conv1)
        self.bn1 = make_norm(norm, out_channels, gn_spec)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[N, 3, H, W] -> Tensor[N, C_out, ceil(H / 4), ceil(W / 4)]."""
        x = F.relu_(conv_then_norm(self.conv1, self.bn1, x))
        return F.max_pool2d(
            x,
            kernel_size=STEM_POOL_KERNEL,
            stride=STEM_POOL_STRIDE,
            padding=STEM_POOL_KERNEL // 2,
        )


class Bottleneck(nn.Module):
    """Bottleneck residual block: 1x1 reduce, 3x3 (grouped, maybe deformable), 1x1 expand."""

    def __init__(
        self,
        *,
        in_channels: int,
        bottleneck_channels: int,
        out_channels: int,
        stride: int = 1,
        dilation: int = 1,
        num_groups: int = 1,
        stride_in_1x1: bool = True,
        norm: str = "FrozenBN",
        gn_spec: GroupNormSpec | None = None,
        deform: DeformSpec = NO_DEFORM,
    ) -> None:
        """Create the block.

        Args:
            in_channels: C_in.
            bottleneck_channels: width of the 3x3 conv (NUM_GROUPS x group width for ResNeXt).
            out_channels: C_out.
            stride: spatial stride (ignored, i.e. 1, when ``dilation > 1``, as in the original).
            dilation: dilation of the 3x3 conv.
            num_groups: groups of the 3x3 conv (ResNeXt cardinality).
            stride_in_1x1: stride in the first 1x1 (MSRA) rather than in the 3x3 (FAIR).
            norm: "FrozenBN", "BN" or "GN".
            gn_spec: GroupNorm grouping.
            deform: deformable-conv settings for the 3x3 conv.
        """
        super().__init__()
        if dilation > 1:
            stride = 1
        # Registered first so the state_dict order matches the original checkpoints.
        self.downsample = make_downsample(
            in_channels, out_channels, stride=stride, norm=norm, gn_spec=gn_spec
        )
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = make_conv1x1(in_channels, bottleneck_channels, stride=stride_1x1)
        self.bn1 = make_norm(norm, bottleneck_channels, gn_spec)
        self.conv2 = make_conv3x3(
            bottleneck_channels,
            bottleneck_channels,
            stride=stride_3x3,
            dilation=dilation,
            groups=num_groups,
            deform=deform,
        )
        self.bn2 = make_norm(norm, bottleneck_channels, gn_spec)
        self.conv3 = make_conv1x1(bottleneck_channels, out_channels)
        self.bn3 = make_norm(norm, out_channels, gn_spec)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[N, C_in, H, W] -> Tensor[N, C_out, H / stride, W / stride]."""
        identity = _shortcut(self.downsample, x)
        out = F.relu_(conv_then_norm(self.conv1, self.bn1, x))
        out = F.relu_(conv_then_norm(self.conv2, self.bn2, out))
        out = conv_then_norm(self.conv3, self.bn3, out)
        return F.relu_(out.add_(identity))  # in place: no backward here reads `out`


class BasicBlock(nn.Module):
    """Basic residual block of ResNet-18/34: two 3x3 convs (the second may be deformable)."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        dilation: int = 1,
        norm: str = "FrozenBN",
        gn_spec: GroupNormSpec | None = None,
        deform: DeformSpec = NO_DEFORM,
    ) -> None:
        """Create the block (arguments as in `Bottleneck`; the stride is in conv1)."""
        super().__init__()
        if dilation > 1:
            stride = 1
        self.downsample = make_downsample(
            in_channels, out_channels, stride=stride, norm=norm, gn_spec=gn_spec
        )
        self.conv1 = make_conv3x3(in_channels, out_channels, stride=stride, dilation=dilation)
        self.bn1 = make_norm(norm, out_channels, gn_spec)
        self.conv2 = make_conv3x3(out_channels, out_channels, dilation=dilation, deform=deform)
        self.bn2 = make_norm(norm, out_channels, gn_spec)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[N, C_in, H, W] -> Tensor[N, C_out, H / stride, W / stride]."""
        identity = _shortcut(self.downsample, x)
        out = F.relu_(conv_then_norm(self.conv1, self.bn1, x))
        out = conv_then_norm(self.conv2, self.bn2, out)
        return F.relu_(out.add_(identity))  # in place: no backward here reads `out`


__all__ = [
    "NO_DEFORM",
    "BasicBlock",
    "Bottleneck",
    "DeformSpec",
    "Stem",
    "init_basic_resnet_convs_",
    "init_conv_",
    "make_conv1x1",
    "make_conv3x3",
]
