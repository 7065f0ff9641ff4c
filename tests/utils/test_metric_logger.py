"""MetricLogger as the original tests describe it: counts, totals, window median/mean; named
meters as attributes, other attributes an AttributeError."""

from __future__ import annotations

import pytest

from fcos_core.utils.metric_logger import MetricLogger

VALUES = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]


def test_update_statistics():
    logger = MetricLogger()
    for v in VALUES:
        logger.update(metric=v)
    meter = logger.meters["metric"]
    assert meter.count == 8 and meter.total == 31.0
    assert meter.median == 3.0  # sorted 1 1 2 3 4 5 6 9: the lower middle value
    assert meter.avg == pytest.approx(31.0 / 8)
    assert logger.metric is meter


def test_attributes():
    logger = MetricLogger(delimiter=" | ")
    assert logger.delimiter == " | " and len(logger.meters) == 0
    with pytest.raises(AttributeError, match="not_there"):
        _ = logger.not_there
