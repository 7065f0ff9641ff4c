"""comm helpers: identity in one process; all_gather / reduce_dict / broadcasts over gloo."""

from __future__ import annotations

import datetime
import multiprocessing as mp

import torch
import torch.distributed as dist

from fcos_core.utils import comm


def test_single_process_fallbacks():
    assert comm.get_world_size() == 1 and comm.get_rank() == 0 and comm.is_main_process()
    assert comm.all_gather({"a": 1}) == [{"a": 1}]
    comm.synchronize()
    reduced = comm.reduce_dict({"b": torch.tensor(2.0), "a": torch.tensor(1.0)})
    assert list(reduced) == ["a", "b"] and reduced["b"].item() == 2.0
    assert comm.broadcast_flag(True) is True
    assert comm.broadcast_int(7) == 7


def _worker(rank: int, store: str, queue) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        gathered = comm.all_gather({"rank": rank, "boxes": torch.full((rank + 1, 4), float(rank))})
        reduced = comm.reduce_dict({"loss": torch.tensor(float(rank + 1))})
        flag = comm.broadcast_flag(rank == 0)
        number = comm.broadcast_int(1000 + rank)
        comm.synchronize()
        queue.put(
            (
                rank,
                [g["rank"] for g in gathered],
                [tuple(g["boxes"].shape) for g in gathered],
                reduced["loss"].item(),
                flag,
                number,
            )
        )
    finally:
        dist.destroy_process_group()


def test_collectives_over_gloo(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(r, str(tmp_path / "store"), queue)) for r in range(2)
    ]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for _rank, ranks, shapes, loss, flag, number in results:
        assert ranks == [0, 1] and shapes == [(1, 4), (2, 4)]
        assert loss == 1.5  # every rank gets the average
        assert flag is True  # rank 0's value everywhere
        assert number == 1000
