"""do_train guards on a toy model: non-finite losses (stop / skip), clipping, time limit (and
the schedule fitted to it), AMP."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fcos_core.config import cfg as global_cfg
from fcos_core.engine import trainer as trainer_module
from fcos_core.engine.event_writer import read_metrics
from fcos_core.engine.trainer import NonFiniteLossError, do_train
from fcos_core.solver import make_lr_scheduler, make_optimizer
from fcos_core.utils.checkpoint import Checkpointer


class _Batch:
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def to(self, device, non_blocking=False):
        return _Batch(self.x.to(device, non_blocking=non_blocking))


class _Target:
    def to(self, device, non_blocking=False):
        return self


class _Toy(nn.Module):
    """Two 'losses'; ``loss_reg`` becomes ``bad_value`` at the iterations in ``bad_calls``."""

    def __init__(self, bad_calls=(), bad_value=float("nan")) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(4))
        self.calls = 0
        self.bad_calls, self.bad_value = set(bad_calls), bad_value

    def forward(self, batch, targets):
        self.calls += 1
        loss_cls = (batch.x * self.w).pow(2).mean()
        loss_reg = (self.w - 3).abs().mean()
        if self.calls in self.bad_calls:
            loss_reg = loss_reg * self.bad_value
        return {"loss_cls": loss_cls, "loss_reg": loss_reg}


def _loader(n: int, start: int = 0):
    g = torch.Generator().manual_seed(0)
    batches = [(_Batch(torch.randn(2, 4, generator=g)), (_Target(),), (0,)) for _ in range(n)]
    return batches[start:]


def _cfg(**solver):
    cfg = global_cfg.clone()
    cfg.SOLVER.MAX_ITER = 6
    cfg.SOLVER.BASE_LR = 0.1
    cfg.SOLVER.STEPS = (100,)
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.LOG_PERIOD = 1
    for k, v in solver.items():
        setattr(cfg.SOLVER, k, v)
    return cfg


def _run(cfg, model, out, period=2, amp=False, resume_from=None):
    """do_train from scratch, or resumed from ``resume_from`` (a file, or "last": out's latest)."""
    cfg.AMP.ENABLED = amp
    optimizer = make_optimizer(cfg, model)
    scheduler = make_lr_scheduler(cfg, optimizer)
    ckpt = Checkpointer(model, optimizer, scheduler, save_dir=str(out), save_to_disk=True)
    arguments = {"iteration": 0}
    if resume_from == "last":
        arguments.update(ckpt.load())
    elif resume_from:
        arguments.update(ckpt.load(str(resume_from), use_latest=False))
    do_train(
        cfg,
        model,
        _loader(cfg.SOLVER.MAX_ITER, start=arguments["iteration"]),
        None,
        optimizer,
        scheduler,
        ckpt,
        "cpu",
        period,
        arguments,
    )
    return arguments


def test_nonfinite_loss_stops_with_iteration_and_name(tmp_path):
    model = _Toy(bad_calls={3})
    with pytest.raises(NonFiniteLossError, match=r"iteration 3: loss_reg is not finite") as info:
        _run(_cfg(NONFINITE_LOSS="stop"), model, tmp_path)
    assert "model_0000002.pth" in str(info.value)
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["model_0000002.pth"]
    assert (tmp_path / "last_checkpoint").read_text().strip() == "model_0000002.pth"
    saved = torch.load(tmp_path / "model_0000002.pth", weights_only=True)
    assert saved["iteration"] == 2 and torch.isfinite(saved["model"]["w"]).all()
    assert torch.isfinite(model.w).all()


def test_nonfinite_loss_skip_counts_and_continues(tmp_path):
    model = _Toy(bad_calls={2, 5}, bad_value=float("inf"))
    arguments = _run(_cfg(NONFINITE_LOSS="skip"), model, tmp_path)
    assert arguments == {"iteration": 6, "skipped_steps": 2}
    assert torch.isfinite(model.w).all()
    records = read_metrics(str(tmp_path / "metrics.json"))
    assert [r["skipped_steps"] for r in records] == [0, 1, 1, 1, 2, 2]
    assert torch.load(tmp_path / "model_final.pth", weights_only=True)["skipped_steps"] == 2


def test_gradient_clipping_bounds_the_step(tmp_path):
    model = _Toy()
    model.w.data.fill_(1000.0)  # huge gradient of loss_cls
    cfg = _cfg(MAX_ITER=1, CLIP_GRAD_NORM=1.0, MOMENTUM=0.0, WEIGHT_DECAY=0.0)
    before = model.w.detach().clone()
    _run(cfg, model, tmp_path)
    step = (model.w.detach() - before).norm().item()
    assert step == pytest.approx(0.1 * 1.0, rel=1e-4)  # lr * max_norm


def test_time_limit_stops_and_saves_final(tmp_path):
    cfg = _cfg(MAX_MINUTES=1e-9)
    arguments = _run(cfg, _Toy(), tmp_path, period=100)
    assert arguments["iteration"] == 1
    assert torch.load(tmp_path / "model_final.pth", weights_only=True)["iteration"] == 1
    assert (tmp_path / "last_checkpoint").read_text().strip() == "model_final.pth"


def test_bf16_autocast_on_cpu(tmp_path):
    class _Lin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, batch, targets):
            y = self.fc(batch.x)
            assert y.dtype == torch.bfloat16
            return {"loss_cls": y.float().pow(2).mean()}

    cfg = _cfg(MAX_ITER=2)
    cfg.AMP.DTYPE = "bfloat16"  # "auto" is bfloat16 only on CPUs with native bfloat16
    arguments = _run(cfg, _Lin(), tmp_path, amp=True)
    assert arguments["iteration"] == 2
    assert all(math.isfinite(r["loss"]) for r in read_metrics(str(tmp_path / "metrics.json")))


class _Clock:
    """Stands in for the trainer's ``time`` module; the model advances it 1 s per forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now


def _slow_toy(clock: _Clock) -> _Toy:
    class _Slow(_Toy):
        def forward(self, batch, targets):
            clock.now += 1.0
            return super().forward(batch, targets)

    return _Slow()


def _fit_cfg():
    # 200 iterations at 1 s do not fit 2 minutes: measured over iterations 6-55, 65 s are left
    return _cfg(MAX_ITER=200, STEPS=(100, 150), MAX_MINUTES=2.0, FIT_TO_MAX_MINUTES=True)


def test_fit_to_max_minutes_shortens_the_run_and_moves_the_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "time", _Clock())
    model = _slow_toy(trainer_module.time)
    arguments = _run(_fit_cfg(), model, tmp_path, period=100)
    # 55 + int(65 s * 0.95 / 1 s) = 116 iterations; steps x 116/200: (58, 87); no time-out
    assert arguments == {"iteration": 116, "skipped_steps": 0, "max_iter": 116}
    assert model.calls == 116
    final = torch.load(tmp_path / "model_final.pth", weights_only=False)
    assert final["iteration"] == 116 and final["max_iter"] == 116
    assert final["scheduler"]["milestones"] == [58, 87]
    lrs = {r["iteration"]: r["lr"] for r in read_metrics(str(tmp_path / "metrics.json"))}
    assert lrs[58] == pytest.approx(0.1) and lrs[59] == pytest.approx(0.01)
    assert lrs[87] == pytest.approx(0.01) and lrs[88] == pytest.approx(0.001)


def test_fit_moves_the_end_of_a_warm_up_still_ahead(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "time", _Clock())
    cfg = _fit_cfg()
    cfg.SOLVER.WARMUP_ITERS, cfg.SOLVER.WARMUP_FACTOR = 80, 0.5
    _run(cfg, _slow_toy(trainer_module.time), tmp_path, period=100)
    # fitted at iteration 55 to 116 iterations: warm-up end 80 x 116/200 = 46.4 -> 46 is already
    # behind, so it ends at 56, the next iteration (as a step would), before the steps at 58 / 87
    final = torch.load(tmp_path / "model_final.pth", weights_only=False)
    assert final["scheduler"]["warmup_iters"] == 56
    lrs = {r["iteration"]: r["lr"] for r in read_metrics(str(tmp_path / "metrics.json"))}
    # linear warm-up: lr = 0.1 * (0.5 + 0.5 * it / warmup_iters), iterations logged 1-based
    assert lrs[55] == pytest.approx(0.1 * (0.5 + 0.5 * 54 / 80))
    assert lrs[57] == pytest.approx(0.1) and lrs[59] == pytest.approx(0.01)


def test_fitted_schedule_survives_a_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "time", _Clock())
    reference = _slow_toy(trainer_module.time)
    _run(_fit_cfg(), reference, tmp_path / "full", period=100)

    # a second process resumes from iteration 100 with the same config and a fresh clock
    monkeypatch.setattr(trainer_module, "time", _Clock())
    model = _slow_toy(trainer_module.time)
    mid = tmp_path / "full" / "model_0000100.pth"
    arguments = _run(_fit_cfg(), model, tmp_path / "resumed", period=100, resume_from=mid)
    assert arguments == {"iteration": 116, "skipped_steps": 0, "max_iter": 116}
    assert model.calls == 16  # not refitted, not 200
    final = torch.load(tmp_path / "resumed" / "model_final.pth", weights_only=False)
    assert final["scheduler"]["milestones"] == [58, 87]
    assert torch.equal(model.w, reference.w)


def test_fit_leaves_a_schedule_that_fits_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "time", _Clock())
    cfg = _cfg(MAX_ITER=80, STEPS=(40,), MAX_MINUTES=2.0, FIT_TO_MAX_MINUTES=True)
    arguments = _run(cfg, _slow_toy(trainer_module.time), tmp_path, period=100)
    assert arguments == {"iteration": 80, "skipped_steps": 0}


def test_resuming_a_finished_fitted_run_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "time", _Clock())
    _run(_fit_cfg(), _slow_toy(trainer_module.time), tmp_path, period=100)
    model = _slow_toy(trainer_module.time)
    # last_checkpoint: model_final, iteration 116 of 116; the loader still holds 84 batches
    arguments = _run(_fit_cfg(), model, tmp_path, period=100, resume_from="last")
    assert model.calls == 0 and arguments["iteration"] == 116
