"""The registry part of the original test_backbones: every name in registry.BACKBONES builds,
by that name, a backbone with ``out_channels`` that yields P3-P7."""

from __future__ import annotations

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.modeling import registry
from fcos_core.modeling.backbone import build_backbone

BUILT_IN = sorted(registry.BACKBONES)
FPN_STRIDES = [8, 16, 32, 64, 128]


def test_built_in_backbones_are_registered_under_the_original_names():
    assert BUILT_IN == sorted(
        [f"R-{d}-FPN-RETINANET" for d in (18, 34, 50, 101, 152)] + ["MNV2-FPN-RETINANET"]
    )


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_registered_backbone_builds_by_its_name(name):
    cfg = default_cfg.clone()
    cfg.merge_from_list(["MODEL.BACKBONE.CONV_BODY", name, "MODEL.RETINANET.USE_C5", False])
    if name.startswith(("R-18", "R-34")):
        cfg.merge_from_list(["MODEL.RESNETS.TRANS_FUNC", "BasicBlockWithFixedBatchNorm",
                             "MODEL.RESNETS.RES2_OUT_CHANNELS", 64])  # fmt: skip
    with torch.device("meta"):
        model = build_backbone(cfg)
        features = model(torch.empty(1, 3, 256, 320))
    assert model.out_channels == cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS
    assert [tuple(f.shape) for f in features] == [
        (1, model.out_channels, -(-256 // s), -(-320 // s)) for s in FPN_STRIDES
    ]
