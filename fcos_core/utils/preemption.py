"""Stop training cleanly on SIGTERM / SIGUSR1 (cluster schedulers' "you are about to be
preempted" signals): the trainer saves a checkpoint at the next iteration boundary and exits,
and the same command resumes exactly from it (the existing exact-resume machinery).

Under SLURM, ``#SBATCH --signal=USR1@120`` asks for SIGUSR1 two minutes before the time limit;
``scancel --signal=TERM`` and preemption send SIGTERM. See docs/slurm.md.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

from fcos_core.utils.comm import get_world_size

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
# exit status after a signal-triggered stop: what a process killed by that signal would report
SIGNAL_EXIT_BASE = 128


class TrainingPreempted(SystemExit):
    """Training stopped on a signal after saving a checkpoint; ``code`` is 128 + the signal."""

    def __init__(self, signum: int, checkpoint: str | None) -> None:
        super().__init__(SIGNAL_EXIT_BASE + signum)
        self.signum, self.checkpoint = signum, checkpoint


class StopRequest:
    """Context manager: while active, STOP_SIGNALS only record that a stop was asked for.

    Outside the main thread (signals cannot be caught there) it does nothing.
    """

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.signum:
            logger.warning("Received %s: stopping at the next iteration boundary",
                           signal.Signals(signum).name)  # fmt: skip
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def agreed(self, device: torch.device) -> int:
        """The signal number if any process received a stop signal (all ranks agree), else 0."""
        if get_world_size() == 1:
            return self.signum
        flag = torch.tensor([self.signum], dtype=torch.int64, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())


def ignore_stop_signals() -> None:
    """For data-loader workers: the main process decides when to stop."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
