"""Distributed helpers that also work in a plain single process.

Every function degrades to a no-op (or the identity) when ``torch.distributed`` is not
initialised, so the same training code runs under ``torchrun`` and as ``python tools/train_net.py``.
Collectives inherit the process group's timeout (see :func:`init_distributed`), so a rank that dies
makes the others fail with an error instead of hanging forever.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_MINUTES = 10


def is_dist_initialized() -> bool:
    """True when a default process group exists."""
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes in the default group (1 without distributed)."""
    return dist.get_world_size() if is_dist_initialized() else 1


def get_rank() -> int:
    """Global rank of this process (0 without distributed)."""
    return dist.get_rank() if is_dist_initialized() else 0


def get_local_rank(arg_value: int | None = None) -> int:
    """Rank of this process on its machine: ``arg_value`` (``--local-rank`` / ``--local_rank``,
    set by ``torch.distributed.launch``) if given, else ``LOCAL_RANK`` (torchrun), else 0."""
    if arg_value is not None:
        return arg_value
    return int(os.environ.get("LOCAL_RANK", "0"))


def get_world_and_rank() -> tuple[int, int]:
    """(world size, global rank) of the default group; (1, 0) without distributed."""
    return get_world_size(), get_rank()


def is_main_process() -> bool:
    """True on global rank 0: the only process that writes files."""
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op with a single process."""
    if get_world_size() > 1:
        dist.barrier()


def init_distributed(
    device: str, local_rank: int, timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES
) -> bool:
    """Initialise the default process group from the ``torchrun`` environment.

    Args:
        device: "cuda" (NCCL backend, one GPU per local rank) or "cpu" (gloo backend).
        local_rank: this process's rank on its machine.
        timeout_minutes: timeout of every collective; a dead peer ends the job with an error.

    Returns:
        True if a process group was created (``WORLD_SIZE`` > 1), False for a single process.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or is_dist_initialized():
        return is_dist_initialized()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        timeout=datetime.timedelta(minutes=timeout_minutes),
    )
    logging.getLogger(__name__).info(
        "Initialised %s process group: rank %d of %d", backend, get_rank(), world_size
    )
    synchronize()
    return True


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average of ``tensor`` over processes (a detached copy of it when not distributed)."""
    tensor = tensor.detach().clone()
    if get_world_size() > 1:
        dist.all_reduce(tensor)
        tensor = tensor / get_world_size()
    return tensor


def all_gather(data: Any) -> list[Any]:
    """Gather any picklable object from every process (works with gloo on CPU and NCCL).

    Args:
        data: the object of this process.

    Returns:
        list with one object per rank, in rank order (``[data]`` without distributed).
    """
    world_size = get_world_size()
    if world_size == 1:
        return [data]
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, data)
    return gathered


def reduce_dict(
    input_dict: dict[str, torch.Tensor], average: bool = True
) -> dict[str, torch.Tensor]:
    """All-reduce a dict of scalar tensors so that every rank gets the same values.

    Every rank receives the result (all-reduce, not reduce), so decisions taken on the reduced
    values (e.g. stopping on a non-finite loss) are identical on all ranks.

    Args:
        input_dict: name -> 0-dim tensor; every rank must pass the same keys.
        average: divide the sum by the world size.

    Returns:
        dict with the same keys (sorted) and detached reduced values.
    """
    world_size = get_world_size()
    names = sorted(input_dict.keys())
    if not names:
        return {}
    values = torch.stack([input_dict[k].detach().float().reshape(()) for k in names])  # (K,)
    if world_size > 1:
        dist.all_reduce(values)
        if average:
            values /= world_size
    return dict(zip(names, values))


def broadcast_int(value: int) -> int:
    """Return rank 0's ``value`` on every rank."""
    if get_world_size() == 1:
        return value
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def broadcast_flag(flag: bool) -> bool:
    """Return rank 0's value of ``flag`` on every rank (for decisions like a time limit)."""
    return bool(broadcast_int(1 if flag else 0))
