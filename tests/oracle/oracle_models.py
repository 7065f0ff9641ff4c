"""Shared set-up of the oracle tests: zoo-config models with random weights, built once."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from yacs.config import CfgNode

from fcos_core.config import cfg as default_cfg
from fcos_core.modeling.detector import GeneralizedRCNN, build_detection_model

ZOO = Path(__file__).resolve().parents[2] / "configs" / "fcos"
# One zoo config per family of the original model zoo.
FAMILIES = {
    "plain": "fcos_R_50_FPN_1x",
    "imprv": "fcos_imprv_R_50_FPN_1x",
    "mnv2": "fcos_syncbn_bs32_c128_MNV2_FPN_1x",
}


def zoo_cfg(name: str) -> CfgNode:
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(ZOO / f"{name}.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def randomise_head(model: GeneralizedRCNN, seed: int) -> None:
    """Random values for the head (Scales included); the rest keeps its seeded random init.

    The post-processing tests replace the head's outputs, so only the head's own tail (Scale,
    exp or ReLU * stride) needs non-trivial values; leaving the backbone's init keeps them fast.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in model.rpn.head.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.randn(value.shape, generator=generator) * 0.05 + 0.02)


@functools.cache
def zoo_model(family: str) -> tuple[GeneralizedRCNN, CfgNode]:
    """(model in eval mode with seeded random weights, its cfg) of a family."""
    cfg = zoo_cfg(FAMILIES[family])
    seed = sorted(FAMILIES).index(family)
    torch.manual_seed(seed)
    model = build_detection_model(cfg).eval()
    randomise_head(model, seed)
    return model, cfg
