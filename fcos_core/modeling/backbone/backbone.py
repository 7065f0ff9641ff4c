"""Backbone builder: body (ResNet/ResNeXt or MobileNetV2) + FPN with P6/P7.

Dimension key: N images, H x W input size, F = MODEL.RESNETS.BACKBONE_OUT_CHANNELS.

`build_backbone(cfg)` looks MODEL.BACKBONE.CONV_BODY up in ``fcos_core.modeling.registry.BACKBONES``
(each built-in builder registers itself below; user code may register more). The built-in ones
return ``nn.Sequential(OrderedDict(body=..., fpn=...))`` (state_dict keys ``body.*`` and ``fpn.*``
as in the original), mapping Tensor[N, 3, H, W] to [P3, P4, P5, P6, P7], each
Tensor[N, F, H_l, W_l] at strides 8, 16, 32, 64, 128, or, when MODEL.FCOS.FPN_STRIDES starts at 4,
to [P2, ..., P7] at strides 4..128 (the stride-4 level; every body returns C2). The module
carries ``out_channels`` (F) and ``out_strides`` (the L strides).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from functools import partial

from torch import nn
from yacs.config import CfgNode

from fcos_core.modeling import registry
from fcos_core.modeling.backbone.fpn import FPN, num_fpn_inputs
from fcos_core.modeling.backbone.mobilenet import MobileNetV2
from fcos_core.modeling.backbone.resnet import ResNet
from fcos_core.utils.comm import get_world_size
from fcos_core.utils.registry import unknown_name_message

logger = logging.getLogger(__name__)

# Extra levels P6, P7 each halve the resolution of the previous level.
NUM_EXTRA_LEVELS = 2


def _with_fpn(cfg: CfgNode, body: nn.Module) -> nn.Sequential:
    """Wrap ``body`` (which has ``out_channels``/``out_strides`` lists, C2..C5) and an FPN over
    C3-C5, or C2-C5 when MODEL.FCOS.FPN_STRIDES asks for P2."""
    num_inputs = num_fpn_inputs(cfg.MODEL.FCOS.FPN_STRIDES)
    if len(body.out_channels) < num_inputs:
        raise ValueError(
            f"MODEL.FCOS.FPN_STRIDES {list(cfg.MODEL.FCOS.FPN_STRIDES)} needs {num_inputs} body "
            f"levels, {cfg.MODEL.BACKBONE.CONV_BODY} returns {len(body.out_channels)}"
        )
    fpn = FPN.from_config(cfg, in_channels_list=body.out_channels[-num_inputs:])
    model = nn.Sequential(OrderedDict([("body", body), ("fpn", fpn)]))
    model.out_channels = fpn.out_channels
    strides = list(body.out_strides[-num_inputs:])
    for _ in range(NUM_EXTRA_LEVELS):
        strides.append(strides[-1] * 2)
    model.out_strides = strides
    return model


def build_resnet_fpn_backbone(cfg: CfgNode, *, depth: int) -> nn.Sequential:
    """ResNet/ResNeXt-``depth`` body + FPN (P3-P5 laterals, or P2-P5) + P6/P7.

    ResNeXt is R-101 with MODEL.RESNETS.NUM_GROUPS > 1.
    """
    return _with_fpn(cfg, ResNet.from_config(cfg, depth=depth))


registry.BACKBONES.register("R-18-FPN-RETINANET", partial(build_resnet_fpn_backbone, depth=18))
registry.BACKBONES.register("R-34-FPN-RETINANET", partial(build_resnet_fpn_backbone, depth=34))
registry.BACKBONES.register("R-50-FPN-RETINANET", partial(build_resnet_fpn_backbone, depth=50))
registry.BACKBONES.register("R-101-FPN-RETINANET", partial(build_resnet_fpn_backbone, depth=101))
registry.BACKBONES.register("R-152-FPN-RETINANET", partial(build_resnet_fpn_backbone, depth=152))


@registry.BACKBONES.register("MNV2-FPN-RETINANET")
def build_mnv2_fpn_backbone(cfg: CfgNode) -> nn.Sequential:
    """MobileNetV2 body + FPN (P3-P5 laterals, or P2-P5) + P6/P7."""
    return _with_fpn(cfg, MobileNetV2.from_config(cfg))


# MODEL.BACKBONE.CONV_BODY -> builder: the registry itself (built-in and user-registered names).
BACKBONES = registry.BACKBONES


def build_backbone(cfg: CfgNode) -> nn.Module:
    """Build the backbone named by MODEL.BACKBONE.CONV_BODY from ``registry.BACKBONES``.

    Raises:
        ValueError: for an unregistered CONV_BODY, naming the registered values (closest first).
    """
    name = cfg.MODEL.BACKBONE.CONV_BODY
    if name not in registry.BACKBONES:
        raise ValueError(
            unknown_name_message(registry.BACKBONES, name, "MODEL.BACKBONE.CONV_BODY")
            + " A custom backbone must be registered (registry.BACKBONES.register) before the "
            "model is built, e.g. from a file given to the tools' --register-file."
        )
    return registry.BACKBONES[name](cfg)


def convert_sync_batchnorm_if_needed(model: nn.Module, cfg: CfgNode) -> nn.Module:
    """Convert BatchNorm layers to SyncBatchNorm when MODEL.USE_SYNCBN asks for it and it applies.

    SyncBatchNorm needs an initialised process group with more than one process and CUDA
    tensors; otherwise (single process, CPU) the model is returned unchanged, with a log line when
    the config asked for SyncBN. Call it after moving the model to its device and before wrapping
    it in DistributedDataParallel.

    Args:
        model: the model (its BatchNorm2d layers are replaced; FrozenBatchNorm2d is untouched).
        cfg: the config (MODEL.USE_SYNCBN).

    Returns:
        The converted model, or ``model`` itself.
    """
    if not cfg.MODEL.USE_SYNCBN:
        return model
    distributed = get_world_size() > 1
    on_cuda = any(p.device.type == "cuda" for p in model.parameters())
    if not (distributed and on_cuda):
        logger.info(
            "MODEL.USE_SYNCBN is set but this is not a multi-process CUDA run; keeping BatchNorm"
        )
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


__all__ = [
    "BACKBONES",
    "build_backbone",
    "build_mnv2_fpn_backbone",
    "build_resnet_fpn_backbone",
    "convert_sync_batchnorm_if_needed",
]
