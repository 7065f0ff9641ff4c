"""do_train on tiny synthetic data: loss goes down, checkpoints, resume at the right iteration
and LR, periodic validation."""

from __future__ import annotations

import logging
import os
from bisect import bisect_right

import pytest
import torch

from fcos_core.engine.event_writer import read_metrics
from fcos_core.engine.launcher import train
from fcos_core.solver.lr_scheduler import warmup_multiplier
from fcos_core.utils.env import seed_all


def _train(cfg):
    seed_all(cfg.SEED)
    return train(cfg, local_rank=0, distributed=False)


def _expected_lr(cfg, it: int) -> float:
    """LR used by 1-based iteration ``it``."""
    s = cfg.SOLVER
    k = it - 1
    return (
        s.BASE_LR
        * warmup_multiplier(k, s.WARMUP_METHOD, s.WARMUP_FACTOR, s.WARMUP_ITERS)
        * (s.GAMMA ** bisect_right(list(s.STEPS), k))
    )


def test_train_checkpoints_and_resume(tiny_cfg, tmp_path, caplog):
    out = tmp_path / "out"
    cfg = tiny_cfg("SOLVER.MAX_ITER", "6", "SOLVER.STEPS", "(7,)", "SOLVER.BASE_LR", "0.02")
    with caplog.at_level(logging.INFO, logger="fcos_core"):
        _train(cfg)
    for name in ("model_0000003.pth", "model_0000006.pth", "model_final.pth", "metrics.json"):
        assert (out / name).exists(), name
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    line = next(r.getMessage() for r in caplog.records if "iter: 6" in r.getMessage())
    for part in (
        "eta: ",
        "loss: ",
        "loss_cls: ",
        "loss_reg: ",
        "loss_centerness: ",
        "time: ",
        "data: ",
        "lr: ",
        "max mem: ",
    ):
        assert part in line, (part, line)

    # same command with a longer schedule: resumes at iteration 6
    caplog.clear()
    cfg2 = tiny_cfg("SOLVER.MAX_ITER", "10", "SOLVER.STEPS", "(7,)", "SOLVER.BASE_LR", "0.02")
    with caplog.at_level(logging.INFO, logger="fcos_core"):
        _train(cfg2)
    assert "Start training at iteration 6 of 10" in caplog.text
    records = read_metrics(str(out / "metrics.json"))
    assert [r["iteration"] for r in records] == list(range(1, 11))
    for r in records:
        assert r["lr"] == pytest.approx(_expected_lr(cfg2, r["iteration"])), r["iteration"]
    final = torch.load(out / "model_final.pth", weights_only=True)
    assert final["iteration"] == 10 and final["scheduler"]["last_epoch"] == 10


def test_loss_goes_down(tiny_cfg):
    cfg = tiny_cfg(
        "SOLVER.MAX_ITER",
        "16",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
        "SOLVER.STEPS",
        "(100,)",
        "SOLVER.OPTIMIZER",
        "AdamW",
        "SOLVER.BASE_LR",
        "0.003",
        "SOLVER.WARMUP_ITERS",
        "0",
    )
    _train(cfg)
    losses = [r["loss"] for r in read_metrics(os.path.join(cfg.OUTPUT_DIR, "metrics.json"))]
    assert len(losses) == 16
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.8 * first, losses


def test_periodic_validation_goes_to_metrics(tiny_cfg):
    cfg = tiny_cfg(
        "SOLVER.MAX_ITER", "2", "SOLVER.TEST_PERIOD", "2", "MODEL.FCOS.INFERENCE_TH", "0.0"
    )
    _train(cfg)
    records = read_metrics(os.path.join(cfg.OUTPUT_DIR, "metrics.json"))
    val = [r for r in records if "val/AP" in r]
    assert len(val) == 1 and val[0]["iteration"] == 2 and 0.0 <= val[0]["val/AP50"] <= 1.0
