"""MobileNetV2 body of the FCOS MNV2 configs.

Dimension key: N images, H x W input size. The body returns the outputs of ``features`` 3, 6, 13
and 17 (24, 32, 96 and 320 channels at strides 4, 8, 16 and 32); the FPN reads the last three.

Module names (``features.0.0``, ``features.1.conv.0``, ...) and trainable BatchNorm layers match the
original FCOS MobileNetV2, so its checkpoints load unchanged. There is no final 1x1 conv and no
classifier.
"""

from __future__ import annotations

from torch import Tensor, nn
from yacs.config import CfgNode

# Inverted-residual settings: (expand ratio t, output channels c, repeats n, first stride s).
INVERTED_RESIDUAL_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
STEM_STRIDE = 2
# Indices into ``features`` whose outputs the body returns (ends of the stride 4/8/16/32 stages).
RETURN_FEATURE_INDICES = (3, 6, 13, 17)


def conv_bn_relu6(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
) -> list[nn.Module]:
    """[bias-free "same" conv, BatchNorm2d, ReLU6] (a list, so callers can flatten them)."""
    return [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(inplace=True),
    ]


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (if t > 1), 3x3 depthwise, 1x1 linear projection."""

    def __init__(
        self, *, in_channels: int, out_channels: int, stride: int, expand_ratio: int
    ) -> None:
        """Args: in_channels, out_channels, stride (1 or 2) of the depthwise conv, expand_ratio t.

        Raises:
            ValueError: for a stride other than 1 or 2.
        """
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride must be 1 or 2, got {stride}")
        hidden = round(in_channels * expand_ratio)
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += conv_bn_relu6(in_channels, hidden, 1)
        layers += conv_bn_relu6(hidden, hidden, 3, stride=stride, groups=hidden)
        layers += [
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[N, C_in, H, W] -> Tensor[N, C_out, H / stride, W / stride]."""
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 feature extractor returning four feature maps.

    Attributes:
        out_channels: channels of the returned maps (24, 32, 96, 320).
        out_strides: their strides (4, 8, 16, 32).
    """

    def __init__(self, *, freeze_at: int = 0) -> None:
        """Build ``features`` (stem + 17 inverted residual blocks).

        Args:
            freeze_at: number of leading ``features`` entries whose parameters are frozen
                (requires_grad False), as in the original MobileNetV2 (the FCOS MNV2 configs
                use 0).
        """
        super().__init__()
        blocks: list[nn.Module] = [
            nn.Sequential(*conv_bn_relu6(3, STEM_CHANNELS, 3, stride=STEM_STRIDE))
        ]
        in_channels, stride = STEM_CHANNELS, STEM_STRIDE
        strides = [stride]
        channels = [in_channels]
        for (
            expand_ratio,
            out_channels,
            repeats,
            first_stride,
        ) in INVERTED_RESIDUAL_SETTINGS:
            for i in range(repeats):
                block_stride = first_stride if i == 0 else 1
                blocks.append(
                    InvertedResidual(
                        in_channels=in_channels,
                        out_channels=out_channels,
                        stride=block_stride,
                        expand_ratio=expand_ratio,
                    )
                )
                in_channels, stride = out_channels, stride * block_stride
                strides.append(stride)
                channels.append(out_channels)
        self.features = nn.ModuleList(blocks)
        self.out_channels = [channels[i] for i in RETURN_FEATURE_INDICES]
        self.out_strides = [strides[i] for i in RETURN_FEATURE_INDICES]
        self._init_weights()
        self._freeze(freeze_at)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> MobileNetV2:
        """Read MODEL.BACKBONE.FREEZE_CONV_BODY_AT."""
        return cls(freeze_at=cfg.MODEL.BACKBONE.FREEZE_CONV_BODY_AT)

    def _init_weights(self) -> None:
        """Convs: normal(0, sqrt(2 / (k * k * C_out))) (Kaiming fan_out); BN: weight 1, bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _freeze(self, freeze_at: int) -> None:
        """Set requires_grad False in ``features[0:freeze_at]``."""
        if not 0 <= freeze_at <= len(self.features):
            raise ValueError(
                "MODEL.BACKBONE.FREEZE_CONV_BODY_AT must be in "
                f"[0, {len(self.features)}] for MobileNetV2, got {freeze_at}"
            )
        for module in self.features[:freeze_at]:
            for param in module.parameters():
                param.requires_grad_(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Tensor[N, 3, H, W] -> four maps Tensor[N, out_channels[i], H / s_i, W / s_i]."""
        outputs = []
        for index, block in enumerate(self.features):
            x = block(x)
            if index in RETURN_FEATURE_INDICES:
                outputs.append(x)
        return outputs


__all__ = ["RETURN_FEATURE_INDICES", "MobileNetV2"]
