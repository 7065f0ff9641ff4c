"""Training metrics sinks: a ``metrics.json`` lines file and TensorBoard (when installed)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from fcos_core.utils.extras import install_hint
from fcos_core.utils.safe_io import atomic_write_text

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


class EventWriter:
    """Append one JSON object per logged iteration to ``output_dir/metrics.json``.

    Each line is ``{"iteration": int, "loss": float, "loss_cls": ..., "lr": ..., ...}``. Only
    the process that writes files (rank 0) should enable it.

    Args:
        output_dir: folder of ``metrics.json`` and ``tensorboard/``; "" disables writing.
        enabled: False for processes that must not write.
        start_iter: iteration the run (re)starts from; lines of later iterations, written by an
            interrupted run after its last checkpoint, are dropped so the file stays one series.
    """

    def __init__(self, output_dir: str, enabled: bool, start_iter: int = 0) -> None:
        self.enabled = bool(enabled and output_dir)
        self.path = os.path.join(output_dir, METRICS_FILE) if output_dir else ""
        self._tb = None
        if not self.enabled:
            return
        os.makedirs(output_dir, exist_ok=True)
        self._truncate_after(start_iter)
        self._tb = _make_tensorboard(os.path.join(output_dir, "tensorboard"))

    def _truncate_after(self, start_iter: int) -> None:
        if not os.path.exists(self.path):
            return
        kept = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    if json.loads(line).get("iteration", 0) <= start_iter:
                        kept.append(line if line.endswith("\n") else line + "\n")
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
        atomic_write_text(self.path, "".join(kept))

    def write(self, iteration: int, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` (numbers) for ``iteration``."""
        if not self.enabled:
            return
        record = {"iteration": iteration, **metrics}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, iteration)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _make_tensorboard(log_dir: str) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.debug("no tensorboard (%s); metrics go to %s only", install_hint("tensorboard"),
                     METRICS_FILE)  # fmt: skip
        return None
    return SummaryWriter(log_dir=log_dir)


def read_metrics(path: str) -> list[dict[str, Any]]:
    """All records of a ``metrics.json`` lines file (unparseable lines skipped)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
