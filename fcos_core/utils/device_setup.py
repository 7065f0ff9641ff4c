"""What a CUDA run sets up beyond moving the model: cuDNN / determinism switches, the DDP
arguments, pinned host memory. Each is a small function so its CPU/CUDA choice is tested on CPU.

Config keys: ``CUDNN_BENCHMARK`` (cuDNN autotuning; off by default because FCOS trains on
varying image sizes, each new shape re-tunes), ``DETERMINISTIC`` (deterministic kernels where
torch has them; slower), ``DIST_TIMEOUT_MINUTES`` (timeout of every collective).
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

import torch

logger = logging.getLogger(__name__)

# cuBLAS needs a fixed workspace for deterministic results (CUDA docs, "Results reproducibility").
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


def configure_backends(cfg: Any) -> None:
    """Apply CUDNN_BENCHMARK and DETERMINISTIC (process-wide torch settings)."""
    torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK) and not cfg.DETERMINISTIC
    if cfg.DETERMINISTIC:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
        torch.backends.cudnn.deterministic = True
        # warn_only: ops without a deterministic kernel warn instead of stopping the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        logger.info("DETERMINISTIC: deterministic kernels where available (slower)")


def ddp_kwargs(device: str, local_rank: int) -> dict[str, Any]:
    """DistributedDataParallel arguments: one GPU per process on CUDA, none on CPU (gloo); no
    per-forward buffer syncing (each rank keeps its BN statistics, as in maskrcnn-benchmark;
    SyncBN, when asked for, shares them instead)."""
    params = inspect.signature(torch.nn.parallel.DistributedDataParallel).parameters
    # torch >= 2.14 names it forward_sync_buffers; broadcast_buffers before (now deprecated).
    buffers = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    if torch.device(device).type == "cuda":
        return {"device_ids": [local_rank], "output_device": local_rank, buffers: False}
    return {"device_ids": None, "output_device": None, buffers: False}


def pin_memory_for(device: str) -> bool:
    """Page-locked batches (for asynchronous host-to-GPU copies) only when training on CUDA."""
    return torch.device(device).type == "cuda"
