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
from yacs.config import CfgNode

logger = logging.getLogger(__name__)

# cuBLAS needs a fixed workspace for deterministic results (CUDA docs, "Results reproducibility").
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


def configure_backends(cfg: CfgNode) -> None:
    """Apply CUDNN_BENCHMARK and DETERMINISTIC (process-wide torch settings)."""
    torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK) and not cfg.DETERMINISTIC
    if cfg.DETERMINISTIC:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
        torch.backends.cudnn.deterministic = True
        # warn_only: ops without a deterministic kernel warn instead of stopping the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        logger.info("DETERMINISTIC: deterministic kernels where available (slower)")


def ddp_kwargs(device: str, local_rank: int) -> dict[str, Any]:
    """DistributedDataParallel arguments: one GPU per process on CUDA, none on CPU (gloo)."""
    if torch.device(device).type == "cuda":
        return {"device_ids": [local_rank], "output_device": local_rank}
    return {"device_ids": None, "output_device": None}


def no_forward_buffer_sync() -> dict[str, bool]:
    """The DDP keyword that turns off the per-forward buffer broadcast: ``forward_sync_buffers``
    since torch 2.13, the deprecated ``broadcast_buffers`` on older torch (GPU images may carry
    one; found by ``make check-gpu`` on torch 2.11)."""
    params = inspect.signature(torch.nn.parallel.DistributedDataParallel.__init__).parameters
    if "forward_sync_buffers" in params:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


def pin_memory_for(device: str) -> bool:
    """Page-locked batches (for asynchronous host-to-GPU copies) only when training on CUDA."""
    return torch.device(device).type == "cuda" and torch.cuda.is_available()
