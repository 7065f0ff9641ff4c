"""Measurement helpers shared by the whole-model benchmarks: timing, peaks, the table."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

# Side of the square matrices of the matmul peak, per device type.
MM_SIDE = {"cpu": 2048, "cuda": 8192}


@dataclass
class Row:
    name: str
    ours: tuple[float, float]
    theirs: tuple[float, float] | None
    note: str = ""
    unit: str = "ms"


def synchronizer(device: str) -> Callable[[], None]:
    """What to call before reading the clock: waits for queued CUDA work; nothing on the CPU."""
    if torch.device(device).type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_pair(
    fns: list[Callable[[], object]], repeats: int, device: str = "cpu"
) -> list[tuple[float, float]]:
    """(min, median) ms of each fn, one warm-up each, then the fns interleaved per repeat."""
    sync = synchronizer(device)
    for fn in fns:
        fn()
    sync()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            sync()
            bucket.append((time.perf_counter() - start) * 1e3)
    return [(min(t), statistics.median(t)) for t in times]


def images_for(batch: int, hw: tuple[int, int], seed: int, device: str = "cpu") -> list[Tensor]:
    """``batch`` random [0, 1] RGB images of size ``hw`` (the same for the same seed)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, *hw, generator=g).to(device) for _ in range(batch)]


def peak_gflops(
    dtype: torch.dtype, map_hw: tuple[int, int], repeats: int, device: str = "cpu", n: int = 0
) -> tuple[float, float]:
    """Best GFLOP/s in ``dtype`` of an n^3 torch.mm and of a 3x3 256->256 conv on a map_hw map.

    On some CPUs the conv (oneDNN) runs well above torch.mm's BLAS, so both are measured and a
    floor should use the faster. ``n`` 0 picks `MM_SIDE` of the device type.
    """
    n = n or MM_SIDE[torch.device(device).type]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    layout = torch.channels_last
    x = torch.randn(1, 256, *map_hw, device=device).to(dtype).contiguous(memory_format=layout)
    w = torch.randn(256, 256, 3, 3, device=device).to(dtype).contiguous(memory_format=layout)
    with torch.inference_mode():
        fns = [lambda: torch.mm(a, b), lambda: F.conv2d(x, w, padding=1)]
        (mm_ms, _), (conv_ms, _) = time_pair(fns, max(repeats, 3), device)
    conv_flop = 2.0 * 256 * 256 * 9 * x.shape[2] * x.shape[3]
    return 2.0 * n**3 / (mm_ms * 1e6), conv_flop / (conv_ms * 1e6)


def peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM on Linux (ru_maxrss keeps the parent's peak over exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cuda_peak_mib(fn: Callable[[], object], device: str) -> float:
    """Peak CUDA memory (MiB) allocated while ``fn`` runs, above what was allocated before."""
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2.0**20


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    print("| measurement | ours min / median | torchvision min / median | ratio (min) | note |")
    print("|---|---|---|---|---|")
    for r in rows:
        ours = f"{r.ours[0]:.1f} / {r.ours[1]:.1f} {r.unit}"
        theirs = f"{r.theirs[0]:.1f} / {r.theirs[1]:.1f} {r.unit}" if r.theirs else "-"
        ratio = f"{r.ours[0] / r.theirs[0]:.2f}" if r.theirs else "-"
        print(f"| {r.name} | {ours} | {theirs} | {ratio} | {r.note} |")
