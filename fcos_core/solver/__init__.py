"""Optimizer, learning-rate schedule and batch-size scaling."""

from fcos_core.solver.build import make_lr_scheduler, make_optimizer
from fcos_core.solver.lr_scheduler import WarmupMultiStepLR

__all__ = ["WarmupMultiStepLR", "make_lr_scheduler", "make_optimizer"]
