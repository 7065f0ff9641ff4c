"""Feature pyramid network with the RetinaNet/FCOS extra levels P6 and P7, and optionally P2.

Dimension key: N images; C2..C5 body features at strides 4, 8, 16, 32; P2..P7 outputs at strides
4..128, all with F = out_channels channels. The original FPN reads C3..C5 (the body's C2 is
ignored) and makes P3..P7; with the stride-4 level (MODEL.FCOS.FPN_STRIDES starting at 4, see
``FPN_LEVELS``) it also reads C2 and makes P2..P7.

Module names follow the original: laterals ``fpn_inner2..4`` and outputs ``fpn_layer2..4`` (the
body stage index, layer1 being 1), extra levels ``top_blocks.p6`` / ``top_blocks.p7``; P2 adds
``fpn_inner1`` / ``fpn_layer1`` and leaves every other key and shape as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.config.checks import ConfigError
from fcos_core.modeling.backbone.norm import GroupNormSpec, make_norm

# Stage index in the name of the coarsest lateral: C5 is the output of layer4 (C3 of layer2,
# C2 of layer1), so P3-P7 name their laterals 2..4 and P2-P7 1..4.
LAST_LATERAL_INDEX = 4
# MODEL.FCOS.FPN_STRIDES the built-in FPN makes -> how many body levels it reads, finest C_k
# first: P3-P7 from C3..C5 (the original; every zoo config), P2-P7 from C2..C5 (the stride-4 level).
FPN_LEVELS = {
    (8, 16, 32, 64, 128): 3,
    (4, 8, 16, 32, 64, 128): 4,
}


def num_fpn_inputs(fpn_strides: Sequence[int]) -> int:
    """Body levels the FPN reads for the output strides `fpn_strides` (MODEL.FCOS.FPN_STRIDES).

    Raises:
        ConfigError: for strides the built-in FPN does not make.
    """
    levels = FPN_LEVELS.get(tuple(int(s) for s in fpn_strides))
    if levels is None:
        allowed = " or ".join(str(list(k)) for k in FPN_LEVELS)
        raise ConfigError(
            f"MODEL.FCOS.FPN_STRIDES must be {allowed} (P3-P7, or P2-P7 with the stride-4 "
            f"level) for the built-in FPN backbones, got {list(fpn_strides)}"
        )
    return levels


def init_fpn_conv_(conv: nn.Conv2d) -> None:
    """Kaiming-uniform (a=1) weights and zero bias, as the original FPN and P6/P7 convs."""
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def make_fpn_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    use_gn: bool = False,
    use_relu: bool = False,
    gn_spec: GroupNormSpec | None = None,
) -> nn.Module:
    """A "same" conv, followed by GroupNorm (then bias-free) and/or ReLU when asked for.

    Returns a plain `nn.Conv2d` when neither is asked for (keys ``fpn_inner2.weight``), otherwise
    an `nn.Sequential` (keys ``fpn_inner2.0.weight``, ``fpn_inner2.1.weight``, ...).
    """
    conv = nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        padding=kernel_size // 2,
        bias=not use_gn,
    )
    init_fpn_conv_(conv)
    layers: list[nn.Module] = [conv]
    if use_gn:
        layers.append(make_norm("GN", out_channels, gn_spec))
    if use_relu:
        layers.append(nn.ReLU(inplace=True))
    return conv if len(layers) == 1 else nn.Sequential(*layers)


class LastLevelP6P7(nn.Module):
    """P6 = conv3x3/2(P5 or C5), P7 = conv3x3/2(ReLU(P6))."""

    def __init__(self, *, in_channels: int, out_channels: int, use_p5: bool) -> None:
        """Args: in_channels (F when reading P5, C5's channels otherwise), out_channels F,
        use_p5 (read P5 (True, FCOS) or C5 (False, RetinaNet))."""
        super().__init__()
        self.use_p5 = use_p5
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
        for conv in (self.p6, self.p7):
            init_fpn_conv_(conv)

    def forward(self, c5: Tensor, p5: Tensor) -> list[Tensor]:
        """C5 Tensor[N, C, H, W] and P5 Tensor[N, F, H, W] -> [P6, P7] at strides 2x and 4x."""
        p6 = self.p6(p5 if self.use_p5 else c5)
        p7 = self.p7(F.relu(p6))
        return [p6, p7]


class FPN(nn.Module):
    """Top-down pyramid over the last ``len(in_channels_list)`` body features, plus top blocks."""

    def __init__(
        self,
        *,
        in_channels_list: Sequence[int],
        out_channels: int,
        top_block: nn.Module | None = None,
        use_gn: bool = False,
        use_relu: bool = False,
        gn_spec: GroupNormSpec | None = None,
    ) -> None:
        """Create laterals (1x1) and outputs (3x3) for each input level.

        Args:
            in_channels_list: channels of the features the FPN reads (C3, C4, C5, or C2..C5 for
                P2), finest first; the coarsest is C5.
            out_channels: F, width of every output level.
            top_block: module mapping (C5, P5) to extra coarser levels (`LastLevelP6P7`).
            use_gn: GroupNorm after each lateral/output conv (MODEL.FPN.USE_GN).
            use_relu: ReLU after each lateral/output conv (MODEL.FPN.USE_RELU).
            gn_spec: GroupNorm grouping.
        """
        super().__init__()
        self.inner_blocks: list[str] = []
        self.layer_blocks: list[str] = []
        conv_kwargs = {"use_gn": use_gn, "use_relu": use_relu, "gn_spec": gn_spec}
        first_index = LAST_LATERAL_INDEX - len(in_channels_list) + 1
        for offset, in_channels in enumerate(in_channels_list):
            index = first_index + offset
            inner = make_fpn_conv(in_channels, out_channels, 1, **conv_kwargs)
            layer = make_fpn_conv(out_channels, out_channels, 3, **conv_kwargs)
            self.add_module(f"fpn_inner{index}", inner)
            self.add_module(f"fpn_layer{index}", layer)
            self.inner_blocks.append(f"fpn_inner{index}")
            self.layer_blocks.append(f"fpn_layer{index}")
        self.top_blocks = top_block
        self.out_channels = out_channels

    @classmethod
    def from_config(cls, cfg: CfgNode, *, in_channels_list: Sequence[int]) -> FPN:
        """Read MODEL.RESNETS.BACKBONE_OUT_CHANNELS, MODEL.FPN.*, MODEL.RETINANET.USE_C5.

        Args:
            cfg: the config.
            in_channels_list: channels of C3, C4, C5 of the body (C2..C5 for P2).
        """
        out_channels = cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS
        use_c5 = cfg.MODEL.RETINANET.USE_C5
        top_block = LastLevelP6P7(
            in_channels=in_channels_list[-1] if use_c5 else out_channels,
            out_channels=out_channels,
            use_p5=not use_c5,
        )
        return cls(
            in_channels_list=in_channels_list,
            out_channels=out_channels,
            top_block=top_block,
            use_gn=cfg.MODEL.FPN.USE_GN,
            use_relu=cfg.MODEL.FPN.USE_RELU,
            gn_spec=GroupNormSpec.from_config(cfg),
        )

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Body features (finest first; only the last len(in_channels_list) are read) -> P3..P7
        (P2..P7 when the FPN reads C2).

        Args:
            features: [..., C3, C4, C5], C_i Tensor[N, C_i channels, H_i, W_i].

        Returns:
            [(P2,) P3, P4, P5, P6, P7], each Tensor[N, F, H_l, W_l].
        """
        features = list(features)[-len(self.inner_blocks) :]
        last_inner = getattr(self, self.inner_blocks[-1])(features[-1])
        results = [getattr(self, self.layer_blocks[-1])(last_inner)]
        for feature, inner_name, layer_name in zip(
            features[-2::-1],
            self.inner_blocks[-2::-1],
            self.layer_blocks[-2::-1],
            strict=True,
        ):
            lateral = getattr(self, inner_name)(feature)
            # Upsample to the lateral's size, so inputs not divisible by 32 also work.
            top_down = F.interpolate(last_inner, size=lateral.shape[-2:], mode="nearest")
            last_inner = top_down.add_(lateral)  # in place: nearest upsampling keeps no output
            results.insert(0, getattr(self, layer_name)(last_inner))
        if self.top_blocks is not None:
            results.extend(self.top_blocks(features[-1], results[-1]))
        return results


__all__ = ["FPN", "FPN_LEVELS", "LastLevelP6P7", "make_fpn_conv", "num_fpn_inputs"]
