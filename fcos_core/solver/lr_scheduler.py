"""Multi-step learning-rate decay with a warmup phase (maskrcnn-benchmark's schedule).

The rate used at iteration ``it`` (0-based; ``scheduler.last_epoch == it``) is::

    base_lr * warmup(it) * gamma ** (number of milestones <= it)

with ``warmup(it) = warmup_factor`` ("constant") or
``warmup_factor * (1 - it / warmup_iters) + it / warmup_iters`` ("linear") while
``it < warmup_iters``, and 1 afterwards.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import LRScheduler

from fcos_core.config.checks import check_choice

WARMUP_METHODS = ("constant", "linear")


def warmup_multiplier(it: int, method: str, warmup_factor: float, warmup_iters: int) -> float:
    """Warmup multiplier of the learning rate at iteration ``it``."""
    if it >= warmup_iters:
        return 1.0
    if method == "constant":
        return warmup_factor
    alpha = it / warmup_iters
    return warmup_factor * (1 - alpha) + alpha


class WarmupMultiStepLR(LRScheduler):
    """Step decay by ``gamma`` at each milestone, after a constant or linear warmup.

    Args:
        optimizer: the wrapped optimizer.
        milestones: iterations at which the rate is multiplied by ``gamma``; must be increasing.
        gamma: decay factor.
        warmup_factor: multiplier at iteration 0.
        warmup_iters: length of the warmup (0 disables it).
        warmup_method: "constant" or "linear".
        last_epoch: index of the last iteration done (-1 for a fresh schedule).

    Raises:
        ValueError: milestones not increasing, or an unknown warmup method.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        milestones: Sequence[int],
        gamma: float = 0.1,
        warmup_factor: float = 1.0 / 3,
        warmup_iters: int = 500,
        warmup_method: str = "linear",
        last_epoch: int = -1,
    ) -> None:
        milestones = list(milestones)
        if milestones != sorted(milestones):
            raise ValueError(f"SOLVER.STEPS must be increasing integers, got {milestones}")
        check_choice("SOLVER.WARMUP_METHOD", warmup_method, WARMUP_METHODS)
        self.milestones = milestones
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Learning rate of every parameter group at iteration ``self.last_epoch``."""
        it = self.last_epoch
        factor = warmup_multiplier(it, self.warmup_method, self.warmup_factor, self.warmup_iters)
        decay = self.gamma ** bisect_right(self.milestones, it)
        return [base_lr * factor * decay for base_lr in self.base_lrs]
