"""A simple wall-clock timer for inference timing lines."""

from __future__ import annotations

import datetime
import time


def get_time_str(seconds: float) -> str:
    """Format seconds as ``H:MM:SS`` (fractions dropped)."""
    return str(datetime.timedelta(seconds=int(seconds)))


class Timer:
    """Accumulate the time of repeated ``tic()`` / ``toc()`` sections."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every recorded section."""
        self.total_time = 0.0
        self.calls = 0
        self.start_time = 0.0
        self.diff = 0.0

    def tic(self) -> None:
        """Start a section."""
        self.start_time = time.perf_counter()

    def toc(self, average: bool = True) -> float:
        """End the section started by ``tic``.

        Returns:
            the average section time if ``average`` else the time of this section.
        """
        self.add(time.perf_counter() - self.start_time)
        return self.average_time if average else self.diff

    def add(self, time_diff: float) -> None:
        """Record a section measured elsewhere."""
        self.diff = time_diff
        self.total_time += time_diff
        self.calls += 1

    @property
    def average_time(self) -> float:
        """Mean section time in seconds (0 before any section)."""
        return self.total_time / self.calls if self.calls else 0.0

    def avg_time_str(self) -> str:
        """Mean section time as ``H:MM:SS``."""
        return get_time_str(self.average_time)
