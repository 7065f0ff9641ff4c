"""Shorten a training schedule to a time budget, keeping its shape (SOLVER.FIT_TO_MAX_MINUTES).

A run capped by SOLVER.MAX_MINUTES on a machine slower than its recipe assumed would stop before
the learning-rate steps, at the high rate. Instead, once the speed is measured, the run is
shortened to what fits and every step moves by the same factor, so the decays still happen.
"""

from __future__ import annotations

from collections.abc import Sequence

# Fraction of the remaining time planned for: checkpoint saves and speed drift need a margin.
TIME_MARGIN = 0.95


def fitted_length(
    it: int, max_iter: int, seconds_left: float, seconds_per_iter: float
) -> int | None:
    """Total iterations that fit in ``seconds_left`` after ``it`` done; None if ``max_iter`` fits.

    Args:
        it: iterations done so far.
        max_iter: planned total iterations.
        seconds_left: time left in the budget (TIME_MARGIN of it is planned for).
        seconds_per_iter: measured speed.

    Returns:
        A total in [it + 1, max_iter - 1] (one more iteration even with no time left), or None
        when the planned run fits.

    Raises:
        ValueError: a non-positive ``seconds_per_iter``.
    """
    if seconds_per_iter <= 0:
        raise ValueError(f"fitted_length: seconds_per_iter must be > 0, got {seconds_per_iter}")
    fits = max(int(max(seconds_left, 0.0) * TIME_MARGIN / seconds_per_iter), 1)
    return None if it + fits >= max_iter else it + fits


def scale_milestones(milestones: Sequence[int], it: int, max_iter: int, new_max: int) -> list[int]:
    """Learning-rate steps of a ``max_iter`` schedule moved to a ``new_max`` one at ``it``.

    Steps still ahead are multiplied by new_max / max_iter and rounded, but kept after ``it``
    (a step cannot land in the past) and at most ``new_max``; steps already taken stay. The
    result is increasing when ``milestones`` is.
    """
    scale = new_max / max_iter
    return [m if m <= it else min(max(round(m * scale), it + 1), new_max) for m in milestones]
