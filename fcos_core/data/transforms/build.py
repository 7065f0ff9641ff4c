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
    ToUint8Tensor,
)


def build_transforms(
    cfg: CfgNode, is_train: bool = True, *, normalize_in_worker: bool = False
) -> Compose:
    """Resize -> (train: RandomHorizontalFlip) -> ToUint8Tensor.

    Items leave as uint8 Tensor[3, H, W] RGB 0..255: the model normalises them on its device
    (INPUT.PIXEL_MEAN / PIXEL_STD / TO_BGR255, `fcos_core.modeling.preprocess`), so loader
    workers do less work and the host-to-device copy moves 4x fewer bytes.

    Args:
        cfg: config with the INPUT.* keys.
        is_train: training pipeline (multi-scale sizes, flips) or test pipeline (deterministic).
        normalize_in_worker: end with ToTensor -> Normalize instead (float32, normalised: the
            pipeline before uint8 batches, which the model accepts as it is); kept for
            benchmarks/bench_data.py and as the tests' reference.
    """
    transforms: list[Any] = [Resize.from_config(cfg, is_train)]
    if is_train:
        transforms.append(RandomHorizontalFlip(cfg.INPUT.HORIZONTAL_FLIP_PROB_TRAIN))
    if normalize_in_worker:
        transforms += [ToTensor(), Normalize.from_config(cfg)]
    else:
        transforms.append(ToUint8Tensor())
    return Compose(transforms)
