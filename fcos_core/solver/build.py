"""Build the optimizer and the learning-rate schedule from the config."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode

from fcos_core.config.checks import ConfigError, one_of_message
from fcos_core.solver.lr_scheduler import WarmupMultiStepLR

OPTIMIZERS = ("SGD", "AdamW")


def param_groups(
    model: nn.Module,
    *,
    base_lr: float,
    weight_decay: float,
    bias_lr_factor: float,
    weight_decay_bias: float,
    offsets_lr_factor: float,
) -> list[dict[str, Any]]:
    """Group trainable parameters by (lr, weight decay).

    Biases get ``base_lr * bias_lr_factor`` and ``weight_decay_bias``; parameters with "offset"
    in their name (deformable-conv offset branches) get their lr times ``offsets_lr_factor``.
    Frozen parameters (``requires_grad=False``) are left out. Groups are in order of first
    appearance, so the layout is the same in every run (needed to resume optimizer state).

    Returns:
        list of ``{"params", "lr", "weight_decay", "name"}`` dicts for a torch optimizer.
    """
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr, wd, tags = base_lr, weight_decay, []
        if "bias" in name:
            lr, wd = lr * bias_lr_factor, weight_decay_bias
            tags.append("bias")
        if "offset" in name:
            lr *= offsets_lr_factor
            tags.append("offset")
        group = groups.setdefault(
            (lr, wd),
            {"params": [], "lr": lr, "weight_decay": wd, "name": "+".join(tags) or "weight"},
        )
        group["params"].append(param)
    return list(groups.values())


def make_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum (default) or AdamW, per ``cfg.SOLVER.OPTIMIZER``.

    Raises:
        ValueError: unknown ``SOLVER.OPTIMIZER`` or a model without trainable parameters.
    """
    solver = cfg.SOLVER
    groups = param_groups(
        model,
        base_lr=solver.BASE_LR,
        weight_decay=solver.WEIGHT_DECAY,
        bias_lr_factor=solver.BIAS_LR_FACTOR,
        weight_decay_bias=solver.WEIGHT_DECAY_BIAS,
        offsets_lr_factor=solver.DCONV_OFFSETS_LR_FACTOR,
    )
    if not groups:
        raise ValueError("the model has no trainable parameters (check FREEZE_CONV_BODY_AT)")
    if solver.OPTIMIZER == "SGD":
        return torch.optim.SGD(groups, lr=solver.BASE_LR, momentum=solver.MOMENTUM)
    if solver.OPTIMIZER == "AdamW":
        return torch.optim.AdamW(groups, lr=solver.BASE_LR)
    raise ConfigError(one_of_message("SOLVER.OPTIMIZER", solver.OPTIMIZER, OPTIMIZERS))


def make_lr_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer) -> WarmupMultiStepLR:
    """:class:`WarmupMultiStepLR` from ``SOLVER.STEPS/GAMMA/WARMUP_*``."""
    solver = cfg.SOLVER
    return WarmupMultiStepLR(
        optimizer,
        solver.STEPS,
        solver.GAMMA,
        warmup_factor=solver.WARMUP_FACTOR,
        warmup_iters=solver.WARMUP_ITERS,
        warmup_method=solver.WARMUP_METHOD,
    )
