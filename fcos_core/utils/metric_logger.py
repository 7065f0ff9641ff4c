"""Running statistics for the training log line (maskrcnn-benchmark's MetricLogger)."""

from __future__ import annotations

from collections import defaultdict, deque

import torch

DEFAULT_WINDOW = 20


class SmoothedValue:
    """Track a series of values: median/mean over a window and the global average.

    Args:
        window_size: number of recent values used by ``median`` and ``avg``.
    """

    def __init__(self, window_size: int = DEFAULT_WINDOW) -> None:
        self.deque: deque[float] = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0

    def update(self, value: float) -> None:
        """Add one value."""
        self.deque.append(value)
        self.count += 1
        self.total += value

    @property
    def median(self) -> float:
        """Median of the window (lower middle value for even sizes, as torch.median)."""
        return torch.tensor(list(self.deque)).median().item()

    @property
    def avg(self) -> float:
        """Mean of the window."""
        return torch.tensor(list(self.deque)).mean().item()

    @property
    def global_avg(self) -> float:
        """Mean of every value ever added."""
        return self.total / max(self.count, 1)

    @property
    def latest(self) -> float:
        """The most recent value."""
        return self.deque[-1]


class MetricLogger:
    """A named collection of :class:`SmoothedValue` meters.

    ``str(logger)`` gives ``"loss: 0.5123 (0.6011)  loss_cls: ..."``: median (global average).

    Args:
        delimiter: separator between meters in the string form.
    """

    def __init__(self, delimiter: str = "  ") -> None:
        self.meters: defaultdict[str, SmoothedValue] = defaultdict(SmoothedValue)
        self.delimiter = delimiter

    def update(self, **kwargs: float | torch.Tensor) -> None:
        """Add one value per named meter; tensors must hold a single element."""
        for name, value in kwargs.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            if not isinstance(value, (float, int)):
                raise TypeError(f"meter {name!r} expects a number, got {type(value).__name__}")
            self.meters[name].update(float(value))

    def __getattr__(self, attr: str) -> SmoothedValue:
        meters = self.__dict__.get("meters")
        if meters is not None and attr in meters:
            return meters[attr]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __str__(self) -> str:
        parts = [f"{name}: {m.median:.4f} ({m.global_avg:.4f})" for name, m in self.meters.items()]
        return self.delimiter.join(parts)
