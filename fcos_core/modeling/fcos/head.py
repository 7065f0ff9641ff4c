"""The FCOS head: shared classification and regression towers over every FPN level.

Dimension key: N images, L levels, C_in head width, C foreground classes, H_l x W_l size of
level l.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.layers import Scale
from fcos_core.layers.dcn import ModulatedDeformConv

# GroupNorm groups in the tower blocks (fixed in the original head).
HEAD_GN_GROUPS = 32
# Std of the normal init of the head convs.
HEAD_INIT_STD = 0.01


def _tower(in_channels: int, num_convs: int, use_dcn_last: bool) -> nn.Sequential:
    """num_convs x [conv3x3 (+bias), GroupNorm(32), ReLU]; the last conv is DCNv2 if asked."""
    layers: list[nn.Module] = []
    for i in range(num_convs):
        if use_dcn_last and i == num_convs - 1:
            conv = ModulatedDeformConv(in_channels, in_channels, kernel_size=3, bias=True)
        else:
            conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=1, padding=1)
        layers += [conv, nn.GroupNorm(HEAD_GN_GROUPS, in_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _init_head_convs(module: nn.Module) -> None:
    """Normal(0, 0.01) weights and zero biases for every nn.Conv2d, as the original head.

    Inside a deformable conv this reaches the offset conv (a Conv2d in the original's DFConv2d
    too); the deformable kernel keeps the layer's own init (uniform in +-1/sqrt(C_in * K), zero
    bias), as the original's, whose kernel is not a Conv2d.
    """
    dcn_kernels = {m.conv for m in module.modules() if isinstance(m, ModulatedDeformConv)}
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m not in dcn_kernels:
            nn.init.normal_(m.weight, std=HEAD_INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class FCOSHead(nn.Module):
    """Towers and predictors shared by all levels, plus one learnable Scale per level.

    Args:
        in_channels: C_in, width of the FPN features and of the towers.
        num_classes: C, foreground classes (MODEL.FCOS.NUM_CLASSES - 1).
        fpn_strides: L strides (one Scale per level).
        num_convs: blocks per tower.
        prior_prob: initial foreground probability of cls_logits.
        norm_reg_targets: ReLU on the scaled regression (times the stride at inference) instead
            of exp.
        centerness_on_reg: centerness reads the bbox tower instead of the cls tower.
        use_dcn_in_tower: the last conv of each tower is a modulated deformable conv.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        fpn_strides: Sequence[int],
        num_convs: int = 4,
        prior_prob: float = 0.01,
        norm_reg_targets: bool = False,
        centerness_on_reg: bool = False,
        use_dcn_in_tower: bool = False,
    ) -> None:
        super().__init__()
        if in_channels % HEAD_GN_GROUPS:
            raise ValueError(
                f"FCOSHead: head width (MODEL.RESNETS.BACKBONE_OUT_CHANNELS) must be divisible by "
                f"{HEAD_GN_GROUPS} for GroupNorm, got {in_channels}"
            )
        if num_classes < 1 or not 0.0 < prior_prob < 1.0:
            raise ValueError(
                f"FCOSHead: need num_classes >= 1 and 0 < prior_prob < 1, got {num_classes}, "
                f"{prior_prob} (MODEL.FCOS.NUM_CLASSES counts the background)"
            )
        self.fpn_strides = list(fpn_strides)
        self.norm_reg_targets = norm_reg_targets
        self.centerness_on_reg = centerness_on_reg
        self.cls_tower = _tower(in_channels, num_convs, use_dcn_in_tower)
        self.bbox_tower = _tower(in_channels, num_convs, use_dcn_in_tower)
        self.cls_logits = nn.Conv2d(in_channels, num_classes, kernel_size=3, stride=1, padding=1)
        self.bbox_pred = nn.Conv2d(in_channels, 4, kernel_size=3, stride=1, padding=1)
        self.centerness = nn.Conv2d(in_channels, 1, kernel_size=3, stride=1, padding=1)
        _init_head_convs(self)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))
        self.scales = nn.ModuleList([Scale(init_value=1.0) for _ in self.fpn_strides])

    @classmethod
    def from_config(cls, cfg: CfgNode, in_channels: int | None = None) -> FCOSHead:
        """Read MODEL.FCOS.*; the head width is ``in_channels`` (the backbone's ``out_channels``,
        as the original passes it) or, without it, MODEL.RESNETS.BACKBONE_OUT_CHANNELS."""
        f = cfg.MODEL.FCOS
        return cls(
            in_channels=in_channels or cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS,
            num_classes=f.NUM_CLASSES - 1,
            fpn_strides=f.FPN_STRIDES,
            num_convs=f.NUM_CONVS,
            prior_prob=f.PRIOR_PROB,
            norm_reg_targets=f.NORM_REG_TARGETS,
            centerness_on_reg=f.CENTERNESS_ON_REG,
            use_dcn_in_tower=f.USE_DCN_IN_TOWER,
        )

    def forward(
        self, features: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Run the head on each level.

        Args:
            features: L tensors Tensor[N, C_in, H_l, W_l].

        Returns:
            (logits, box_regression, centerness): L tensors each, Tensor[N, C, H_l, W_l] class
            logits, Tensor[N, 4, H_l, W_l] non-negative (l, t, r, b) distances (in units of the
            stride in training with NORM_REG_TARGETS, in pixels otherwise), Tensor[N, 1, H_l, W_l]
            logits.
        """
        if len(features) != len(self.scales):
            raise ValueError(
                f"FCOSHead: got {len(features)} feature levels, built for {len(self.scales)} "
                "(MODEL.FCOS.FPN_STRIDES)"
            )
        logits, box_regression, centerness = [], [], []
        for level, feature in enumerate(features):
            cls_feat = self.cls_tower(feature)
            box_feat = self.bbox_tower(feature)
            logits.append(self.cls_logits(cls_feat))
            centerness.append(self.centerness(box_feat if self.centerness_on_reg else cls_feat))
            box_regression_l = self.scales[level](self.bbox_pred(box_feat))
            if self.norm_reg_targets:
                box_regression_l = F.relu(box_regression_l)
                box_regression.append(
                    box_regression_l
                    if self.training
                    else box_regression_l * self.fpn_strides[level]
                )
            else:
                box_regression.append(torch.exp(box_regression_l))
        return logits, box_regression, centerness
