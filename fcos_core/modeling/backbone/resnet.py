"""ResNet / ResNeXt bodies (ResNet-18/34 basic blocks, ResNet-50/101/152 bottlenecks).

Dimension key: N images, H x W input size; C2..C5 are the outputs of layer1..layer4 at strides
4, 8, 16 and 32 (layer4 stays at stride 16 when RES5_DILATION > 1).

Module names (``stem.conv1``, ``stem.bn1``, ``layer1.0.conv1``, ...) equal the original
maskrcnn-benchmark / FCOS ones, so official checkpoints load with no missing or unexpected keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.config.checks import check_choice
from fcos_core.modeling.backbone.norm import GroupNormSpec
from fcos_core.modeling.backbone.resnet_blocks import (
    BasicBlock,
    Bottleneck,
    DeformSpec,
    Stem,
    init_basic_resnet_convs_,
)

_V = TypeVar("_V")

NUM_STAGES = 4
# Stride of the stem output (7x7 stride-2 conv + stride-2 max-pool).
STEM_TOTAL_STRIDE = 4

# Blocks per stage (layer1..layer4) for each depth, and whether the depth uses bottlenecks.
BLOCK_COUNTS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
BOTTLENECK_DEPTHS = (50, 101, 152)

# MODEL.RESNETS.TRANS_FUNC -> (block type, norm kind).
TRANS_FUNCS = {
    "BottleneckWithFixedBatchNorm": ("bottleneck", "FrozenBN"),
    "BottleneckWithBatchNorm": ("bottleneck", "BN"),
    "BottleneckWithGN": ("bottleneck", "GN"),
    "BasicBlockWithFixedBatchNorm": ("basic", "FrozenBN"),
    "BasicBlockWithBatchNorm": ("basic", "BN"),
    "BasicBlockWithGN": ("basic", "GN"),
}
# MODEL.RESNETS.STEM_FUNC -> norm kind.
STEM_FUNCS = {
    "StemWithFixedBatchNorm": "FrozenBN",
    "StemWithBatchNorm": "BN",
    "StemWithGN": "GN",
}


def _lookup(table: dict[str, _V], key: str, name: str) -> _V:
    """``table[name]`` or a ValueError naming the config key and the allowed values."""
    return table[check_choice(key, name, table)]


class ResNet(nn.Module):
    """ResNet / ResNeXt body returning the outputs of its four stages.

    Attributes:
        out_channels: channels of C2..C5.
        out_strides: strides of C2..C5 with respect to the input.
    """

    def __init__(
        self,
        *,
        depth: int = 50,
        block: str = "bottleneck",
        stem_out_channels: int = 64,
        res2_out_channels: int = 256,
        num_groups: int = 1,
        width_per_group: int = 64,
        stride_in_1x1: bool = True,
        stem_norm: str = "FrozenBN",
        block_norm: str = "FrozenBN",
        gn_spec: GroupNormSpec | None = None,
        res5_dilation: int = 1,
        stage_with_dcn: Sequence[bool] = (False,) * NUM_STAGES,
        with_modulated_dcn: bool = False,
        deformable_groups: int = 1,
        freeze_at: int = 0,
    ) -> None:
        """Build stem and layer1..layer4.

        Args:
            depth: 18, 34, 50, 101 or 152.
            block: "bottleneck" or "basic" (must fit the depth).
            stem_out_channels: stem width.
            res2_out_channels: layer1 output width, doubled at every later stage.
            num_groups: ResNeXt cardinality (bottleneck only).
            width_per_group: per-group width of layer1's 3x3 conv, doubled at every later stage.
            stride_in_1x1: stride in the 1x1 conv (MSRA) or in the 3x3 conv (FAIR/torchvision).
            stem_norm: norm kind of the stem ("FrozenBN", "BN", "GN").
            block_norm: norm kind of the residual blocks.
            gn_spec: GroupNorm grouping for the "GN" kinds.
            res5_dilation: dilation of layer4 (1 or 2); > 1 keeps layer4 at stride 16.
            stage_with_dcn: per stage, whether the 3x3 convs are deformable.
            with_modulated_dcn: DCNv2 (True) or DCNv1 (False) where ``stage_with_dcn`` is True.
            deformable_groups: offset groups of the deformable convs.
            freeze_at: 0 freezes nothing, 1 the stem, k > 1 the stem and layer1..layer(k-1).
        """
        super().__init__()
        _check_arch(depth, block, num_groups, stage_with_dcn, freeze_at)
        self.stem = Stem(out_channels=stem_out_channels, norm=stem_norm, gn_spec=gn_spec)
        in_channels, stride = stem_out_channels, STEM_TOTAL_STRIDE
        self.out_channels: list[int] = []
        self.out_strides: list[int] = []
        for index, count in enumerate(BLOCK_COUNTS[depth]):
            factor = 2**index
            dilation = res5_dilation if index == NUM_STAGES - 1 else 1
            first_stride = 1 if index == 0 or dilation > 1 else 2
            out_channels = res2_out_channels * factor
            spec = _StageSpec(
                block=block,
                bottleneck_channels=num_groups * width_per_group * factor,
                out_channels=out_channels,
                num_groups=num_groups,
                stride_in_1x1=stride_in_1x1,
                norm=block_norm,
                gn_spec=gn_spec,
                dilation=dilation,
                deform=DeformSpec(
                    enabled=bool(stage_with_dcn[index]),
                    modulated=with_modulated_dcn,
                    deformable_groups=deformable_groups,
                ),
            )
            self.add_module(f"layer{index + 1}", spec.make_stage(in_channels, count, first_stride))
            in_channels, stride = out_channels, stride * first_stride
            self.out_channels.append(out_channels)
            self.out_strides.append(stride)
        if block == "basic":  # convs init as the original's for bottlenecks, else torchvision's
            init_basic_resnet_convs_(self)
        self.freeze_at = freeze_at
        self._freeze(freeze_at)

    @classmethod
    def from_config(cls, cfg: CfgNode, *, depth: int) -> ResNet:
        """Read ``MODEL.RESNETS.*``, ``MODEL.GROUP_NORM.*`` and FREEZE_CONV_BODY_AT."""
        r = cfg.MODEL.RESNETS
        block, block_norm = _lookup(TRANS_FUNCS, "MODEL.RESNETS.TRANS_FUNC", r.TRANS_FUNC)
        stem_norm = _lookup(STEM_FUNCS, "MODEL.RESNETS.STEM_FUNC", r.STEM_FUNC)
        return cls(
            depth=depth,
            block=block,
            stem_out_channels=r.STEM_OUT_CHANNELS,
            res2_out_channels=r.RES2_OUT_CHANNELS,
            num_groups=r.NUM_GROUPS,
            width_per_group=r.WIDTH_PER_GROUP,
            stride_in_1x1=r.STRIDE_IN_1X1,
            stem_norm=stem_norm,
            block_norm=block_norm,
            gn_spec=GroupNormSpec.from_config(cfg),
            res5_dilation=r.RES5_DILATION,
            stage_with_dcn=tuple(r.STAGE_WITH_DCN),
            with_modulated_dcn=r.WITH_MODULATED_DCN,
            deformable_groups=r.DEFORMABLE_GROUPS,
            freeze_at=cfg.MODEL.BACKBONE.FREEZE_CONV_BODY_AT,
        )

    def _freeze(self, freeze_at: int) -> None:
        """Set requires_grad False in the stem (freeze_at >= 1) and layer1..layer(freeze_at-1)."""
        for index in range(freeze_at):
            module = self.stem if index == 0 else getattr(self, f"layer{index}")
            for param in module.parameters():
                param.requires_grad_(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Tensor[N, 3, H, W] -> [C2, C3, C4, C5], each Tensor[N, out_channels[i], H_i, W_i]."""
        x = self.stem(x)
        outputs = []
        for index in range(1, NUM_STAGES + 1):
            x = getattr(self, f"layer{index}")(x)
            outputs.append(x)
        return outputs


@dataclass(frozen=True)
class _StageSpec:
    """Settings shared by the blocks of one stage."""

    block: str
    bottleneck_channels: int
    out_channels: int
    num_groups: int
    stride_in_1x1: bool
    norm: str
    gn_spec: GroupNormSpec | None
    dilation: int
    deform: DeformSpec

    def make_block(self, in_channels: int, stride: int) -> nn.Module:
        """One residual block reading ``in_channels`` channels at the given stride."""
        common = {
            "in_channels": in_channels,
            "out_channels": self.out_channels,
            "stride": stride,
            "dilation": self.dilation,
            "norm": self.norm,
            "gn_spec": self.gn_spec,
            "deform": self.deform,
        }
        if self.block == "basic":
            return BasicBlock(**common)
        return Bottleneck(
            bottleneck_channels=self.bottleneck_channels,
            num_groups=self.num_groups,
            stride_in_1x1=self.stride_in_1x1,
            **common,
        )

    def make_stage(self, in_channels: int, count: int, first_stride: int) -> nn.Sequential:
        """``count`` blocks; the first one changes width and applies ``first_stride``."""
        blocks = [self.make_block(in_channels, first_stride)]
        blocks += [self.make_block(self.out_channels, 1) for _ in range(count - 1)]
        return nn.Sequential(*blocks)


def _check_arch(
    depth: int,
    block: str,
    num_groups: int,
    stage_with_dcn: Sequence[bool],
    freeze_at: int,
) -> None:
    """Raise a ValueError naming the config key for inconsistent ResNet settings."""
    check_choice("ResNet depth", depth, sorted(BLOCK_COUNTS))
    expected = "bottleneck" if depth in BOTTLENECK_DEPTHS else "basic"
    if block != expected:
        allowed = [name for name, (kind, _) in TRANS_FUNCS.items() if kind == expected]
        raise ValueError(
            f"ResNet-{depth} uses {expected} blocks: MODEL.RESNETS.TRANS_FUNC must be one of "
            f"{', '.join(allowed)} (got a {block} block)"
        )
    if block == "basic" and num_groups != 1:
        raise ValueError(
            f"ResNet-{depth} (basic blocks) needs MODEL.RESNETS.NUM_GROUPS 1, got {num_groups}"
        )
    if len(stage_with_dcn) != NUM_STAGES:
        raise ValueError(
            f"MODEL.RESNETS.STAGE_WITH_DCN needs {NUM_STAGES} entries, got {tuple(stage_with_dcn)}"
        )
    if not 0 <= freeze_at <= NUM_STAGES + 1:
        raise ValueError(
            f"MODEL.BACKBONE.FREEZE_CONV_BODY_AT must be in [0, {NUM_STAGES + 1}], got {freeze_at}"
        )


__all__ = ["BLOCK_COUNTS", "STEM_FUNCS", "TRANS_FUNCS", "ResNet"]
