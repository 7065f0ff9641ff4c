"""fit_schedule: the length that fits a time budget and the learning-rate steps moved with it."""

from __future__ import annotations

import pytest

from fcos_core.solver.fit_schedule import TIME_MARGIN, fitted_length, scale_milestones


def test_fitting_schedule_is_left_alone():
    # 55 done, 1745 left at 0.2 s = 349 s; 400 s * margin = 380 s is enough
    assert fitted_length(55, 1800, 400.0, 0.2) is None


def test_length_is_what_fits_in_the_margin():
    # the quickstart on a machine at 0.37 s / it: 8 min budget, 55 iterations done after ~21 s
    got = fitted_length(55, 1800, 480.0 - 55 * 0.37, 0.37)
    assert got == 55 + int((480.0 - 55 * 0.37) * TIME_MARGIN / 0.37)
    assert 1200 < got < 1800


def test_no_time_left_still_runs_one_more_iteration():
    assert fitted_length(55, 1800, -3.0, 0.5) == 56


def test_bad_speed_is_an_error():
    with pytest.raises(ValueError, match="seconds_per_iter must be > 0, got 0"):
        fitted_length(1, 10, 5.0, 0.0)


def test_steps_scale_with_the_length():
    assert scale_milestones([1400, 1650], 55, 1800, 1200) == [933, 1100]


def test_steps_never_move_into_the_past_or_past_the_end():
    # taken steps stay; future ones land after `it`, at most at the new end
    assert scale_milestones([20, 90, 99], 60, 100, 62) == [20, 61, 61]
    assert scale_milestones([], 10, 100, 50) == []
