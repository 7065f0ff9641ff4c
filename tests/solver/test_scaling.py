"""SOLVER.REFERENCE_IMS_PER_BATCH: the linear scaling rule on LR and iteration counts."""

from __future__ import annotations

import pytest

from fcos_core.config import cfg as defaults
from fcos_core.config.checks import ConfigError
from fcos_core.solver.scaling import batch_mismatch_warning, config_file_batch, scale_schedule


def _cfg(batch: int, reference: int):
    cfg = defaults.clone()
    s = cfg.SOLVER
    s.IMS_PER_BATCH, s.REFERENCE_IMS_PER_BATCH = batch, reference
    s.BASE_LR, s.MAX_ITER, s.STEPS, s.WARMUP_ITERS = 0.01, 90000, (60000, 80000), 500
    s.CHECKPOINT_PERIOD, s.TEST_PERIOD = 2500, 0
    return cfg


def test_smaller_batch_scales_lr_down_and_iterations_up():
    cfg = _cfg(batch=4, reference=16)
    note = scale_schedule(cfg)
    s = cfg.SOLVER
    assert s.BASE_LR == pytest.approx(0.0025)
    assert (s.MAX_ITER, tuple(s.STEPS), s.WARMUP_ITERS) == (360000, (240000, 320000), 2000)
    assert (s.CHECKPOINT_PERIOD, s.TEST_PERIOD) == (10000, 0)  # 0 stays off
    assert note.startswith("SOLVER.IMS_PER_BATCH 4 vs SOLVER.REFERENCE_IMS_PER_BATCH 16: scaled")
    assert scale_schedule(cfg) is None  # applied once: the reference is now the batch


def test_larger_batch_and_rounding():
    cfg = _cfg(batch=24, reference=16)
    scale_schedule(cfg)
    s = cfg.SOLVER
    assert s.BASE_LR == pytest.approx(0.015)
    # 90000 / 1.5 = 60000; 500 / 1.5 = 333.3 -> 333; images seen stay the same
    assert (s.MAX_ITER, tuple(s.STEPS), s.WARMUP_ITERS) == (60000, (40000, 53333), 333)
    assert s.MAX_ITER * s.IMS_PER_BATCH == 90000 * 16


def test_off_or_equal_changes_nothing():
    for batch, reference in ((4, 0), (16, 16)):
        cfg = _cfg(batch, reference)
        assert scale_schedule(cfg) is None and cfg.SOLVER.MAX_ITER == 90000
    with pytest.raises(ConfigError, match="REFERENCE_IMS_PER_BATCH must be >= 0, got -1"):
        scale_schedule(_cfg(4, -1))


def test_warning_when_batch_changed_without_reference(tmp_path):
    cfg = _cfg(batch=4, reference=0)
    assert batch_mismatch_warning(cfg, 16) == (
        "SOLVER.IMS_PER_BATCH is 4 but the config's schedule (BASE_LR, MAX_ITER, STEPS) was "
        "written for 16: add SOLVER.REFERENCE_IMS_PER_BATCH 16 to scale them by 4/16, or adjust "
        "them yourself"
    )
    assert batch_mismatch_warning(cfg, 4) is None
    assert batch_mismatch_warning(_cfg(batch=4, reference=16), 16) is None
    yaml = tmp_path / "c.yaml"
    yaml.write_text("SOLVER:\n  IMS_PER_BATCH: 8\n")
    assert config_file_batch(str(yaml)) == 8 and config_file_batch("") == 16
