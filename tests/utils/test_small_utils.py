"""MetricLogger/SmoothedValue, Timer, setup_logger, resolve_device, seed_all, mkdir."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch

from fcos_core.utils import env
from fcos_core.utils.logger import setup_logger
from fcos_core.utils.metric_logger import MetricLogger, SmoothedValue
from fcos_core.utils.miscellaneous import mkdir
from fcos_core.utils.timer import Timer, get_time_str


def test_smoothed_value_window_and_global():
    v = SmoothedValue(window_size=3)
    for x in (1.0, 2.0, 10.0, 4.0):
        v.update(x)
    assert v.median == 4.0 and v.avg == pytest.approx(16 / 3)
    assert v.global_avg == pytest.approx(17 / 4) and v.latest == 4.0


def test_metric_logger_string_and_errors():
    m = MetricLogger()
    m.update(loss=torch.tensor(0.5), time=1)
    m.update(loss=1.5)
    assert str(m) == "loss: 0.5000 (1.0000)  time: 1.0000 (1.0000)"
    assert m.loss.count == 2
    with pytest.raises(AttributeError):
        _ = m.nope
    with pytest.raises(TypeError, match="loss"):
        m.update(loss="x")


def test_timer():
    t = Timer()
    t.add(1.0)
    t.add(3.0)
    assert t.average_time == 2.0 and t.total_time == 4.0 and t.calls == 2
    assert get_time_str(3725.7) == "1:02:05"


def test_setup_logger_rank0_file_and_rank1_silent(tmp_path, capsys):
    log = setup_logger("fcos_test_logger", str(tmp_path), 0)
    log.info("hello")
    setup_logger("fcos_test_logger", str(tmp_path), 0).info("again")  # no duplicated handlers
    text = (tmp_path / "log.txt").read_text()
    assert text.count("hello") == 1 and text.count("again") == 1
    assert capsys.readouterr().out.count("again") == 1
    quiet = setup_logger("fcos_test_logger_r1", str(tmp_path / "r1"), 1)
    quiet.info("nothing")
    assert not (tmp_path / "r1").exists()
    for handler in list(log.handlers):
        handler.close()


def test_resolve_device(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    env._warned_devices.clear()
    with caplog.at_level(logging.INFO):
        assert env.resolve_device("cuda") == "cpu"
        assert env.resolve_device("cuda") == "cpu"
    assert caplog.text.count("CUDA is not available") == 1
    assert env.resolve_device("cpu") == "cpu"


def test_seed_all_is_reproducible():
    env.seed_all(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    env.seed_all(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_mkdir(tmp_path):
    mkdir(str(tmp_path / "a" / "b"))
    mkdir(str(tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir()
