"""Backbones: ResNet/ResNeXt and MobileNetV2 bodies with an FPN (P3-P7, optionally P2)."""

from __future__ import annotations

from fcos_core.modeling.backbone.backbone import (
    BACKBONES,
    build_backbone,
    convert_sync_batchnorm_if_needed,
)
from fcos_core.modeling.backbone.fpn import FPN, LastLevelP6P7
from fcos_core.modeling.backbone.mobilenet import MobileNetV2
from fcos_core.modeling.backbone.resnet import ResNet

__all__ = [
    "BACKBONES",
    "FPN",
    "LastLevelP6P7",
    "MobileNetV2",
    "ResNet",
    "build_backbone",
    "convert_sync_batchnorm_if_needed",
]
