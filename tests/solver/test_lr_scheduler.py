"""WarmupMultiStepLR against hand-computed values; optimizer parameter groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcos_core.config import cfg as global_cfg
from fcos_core.solver import WarmupMultiStepLR, make_lr_scheduler, make_optimizer


def _lrs(scheduler: WarmupMultiStepLR, optimizer: torch.optim.Optimizer, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def _sgd(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def test_linear_warmup_hand_computed():
    opt = _sgd(0.1)
    sched = WarmupMultiStepLR(
        opt, [6, 8], gamma=0.1, warmup_factor=0.25, warmup_iters=4, warmup_method="linear"
    )
    # it 0..3: 0.1 * (0.25 + 0.75 * it / 4); it 4,5: 0.1; it 6,7: 0.01; it 8,9: 0.001
    expected = [0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert _lrs(sched, opt, 10) == pytest.approx(expected, rel=1e-9)


def test_constant_warmup_hand_computed():
    opt = _sgd(0.2)
    sched = WarmupMultiStepLR(
        opt, [3], gamma=0.5, warmup_factor=0.1, warmup_iters=2, warmup_method="constant"
    )
    expected = [0.02, 0.02, 0.2, 0.1, 0.1]
    assert _lrs(sched, opt, 5) == pytest.approx(expected, rel=1e-9)


def test_milestone_inside_warmup_and_state_roundtrip():
    opt = _sgd(1.0)
    sched = WarmupMultiStepLR(opt, [1], gamma=0.1, warmup_factor=0.5, warmup_iters=2)
    assert _lrs(sched, opt, 3) == pytest.approx([0.5, 0.075, 0.1])
    opt2 = _sgd(1.0)
    sched2 = WarmupMultiStepLR(opt2, [1], gamma=0.1, warmup_factor=0.5, warmup_iters=2)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.last_epoch == 3
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())


@pytest.mark.parametrize("milestones", [[5, 3], [10, 2, 30]])
def test_milestones_must_increase(milestones):
    with pytest.raises(ValueError, match="increasing"):
        WarmupMultiStepLR(_sgd(), milestones)


def test_unknown_warmup_method():
    with pytest.raises(ValueError, match="constant, linear"):
        WarmupMultiStepLR(_sgd(), [1], warmup_method="cosine")


class _WithOffsets(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.offset = nn.Conv2d(2, 3, 1)
        self.frozen = nn.Conv2d(2, 2, 1)
        self.frozen.requires_grad_(False)


def _cfg(**solver):
    cfg = global_cfg.clone()
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.BIAS_LR_FACTOR = 2.0
    cfg.SOLVER.WEIGHT_DECAY = 1e-4
    cfg.SOLVER.WEIGHT_DECAY_BIAS = 0.0
    cfg.SOLVER.DCONV_OFFSETS_LR_FACTOR = 0.1
    for k, v in solver.items():
        setattr(cfg.SOLVER, k, v)
    return cfg


def _group_of(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> dict:
    return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))


def test_make_optimizer_groups():
    model = _WithOffsets()
    opt = make_optimizer(_cfg(), model)
    assert isinstance(opt, torch.optim.SGD)
    assert _group_of(opt, model.conv.weight)["lr"] == pytest.approx(0.01)
    assert _group_of(opt, model.conv.weight)["weight_decay"] == pytest.approx(1e-4)
    assert _group_of(opt, model.conv.bias)["lr"] == pytest.approx(0.02)
    assert _group_of(opt, model.conv.bias)["weight_decay"] == 0.0
    assert _group_of(opt, model.offset.weight)["lr"] == pytest.approx(0.001)
    assert _group_of(opt, model.offset.bias)["lr"] == pytest.approx(0.002)
    all_params = [p for g in opt.param_groups for p in g["params"]]
    assert not any(p is model.frozen.weight for p in all_params)
    assert len(all_params) == 4
    assert opt.param_groups[0]["momentum"] == pytest.approx(global_cfg.SOLVER.MOMENTUM)


def test_make_optimizer_adamw_and_unknown():
    assert isinstance(make_optimizer(_cfg(OPTIMIZER="AdamW"), _WithOffsets()), torch.optim.AdamW)
    with pytest.raises(ValueError, match="SGD, AdamW"):
        make_optimizer(_cfg(OPTIMIZER="Lion"), _WithOffsets())


def test_make_lr_scheduler_from_cfg():
    model = _WithOffsets()
    cfg = _cfg(STEPS=(2,), GAMMA=0.1, WARMUP_ITERS=0, WARMUP_METHOD="constant")
    opt = make_optimizer(cfg, model)
    sched = make_lr_scheduler(cfg, opt)
    lrs = _lrs(sched, opt, 3)
    assert lrs == pytest.approx([0.01, 0.01, 0.001])
