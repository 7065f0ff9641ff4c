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


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Random values for every floating entry of the state dict (the official layout)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            if key.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
            else:
                value.copy_(torch.randn(value.shape, generator=generator) * 0.05)


@functools.cache
def zoo_model(family: str) -> tuple[GeneralizedRCNN, CfgNode]:
    """(model in eval mode with random weights, its cfg) of a family."""
    cfg = zoo_cfg(FAMILIES[family])
    model = build_detection_model(cfg).eval()
    randomise(model, seed=sorted(FAMILIES).index(family))
    return model, cfg
