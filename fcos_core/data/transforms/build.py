"""`build_transforms(cfg, is_train)`: the training or test transform pipeline."""

from __future__ import annotations

from typing import Any

from yacs.config import CfgNode

from fcos_core.data.transforms.transforms import (
    Compose,
    Normalize,
    RandomHorizontalFlip,
    Resize,
    ToTensor,
)


def build_transforms(cfg: CfgNode, is_train: bool = True) -> Compose:
    """Resize -> (train: RandomHorizontalFlip) -> ToTensor -> Normalize.

    Args:
        cfg: config with the INPUT.* keys.
        is_train: training pipeline (multi-scale sizes, flips) or test pipeline (deterministic).
    """
    transforms: list[Any] = [Resize.from_config(cfg, is_train)]
    if is_train:
        transforms.append(RandomHorizontalFlip(cfg.INPUT.HORIZONTAL_FLIP_PROB_TRAIN))
    transforms += [ToTensor(), Normalize.from_config(cfg)]
    return Compose(transforms)
