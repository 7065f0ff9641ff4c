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

from fcos_core.utils.precision import DTYPES  # row dtype name -> torch dtype

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
    fns: list[Callable[[], object]],
    repeats: int,
    device: str = "cpu",
    clock: Callable[[], float] = time.perf_counter,
) -> list[tuple[float, float]]:
    """(min, median) ms of each fn, one warm-up each, then the fns interleaved per repeat.

    ``clock`` `time.process_time` measures this process's CPU time instead of the wall clock:
    with one thread, work that other processes on a shared machine barely change.
    """
    sync = synchronizer(device)
    for fn in fns:
        fn()
    sync()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            start = clock()
            fn()
            sync()
            bucket.append((clock() - start) * 1e3)
    return [(min(t), statistics.median(t)) for t in times]


def images_for(batch: int, hw: tuple[int, int], seed: int, device: str = "cpu") -> list[Tensor]:
    """``batch`` random [0, 1] RGB images of size ``hw`` (the same for the same seed)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, *hw, generator=g).to(device) for _ in range(batch)]


@dataclass
class PeakProbe:
    """Kernels that show a dtype's peak: an n^3 torch.mm and a 3x3 256->256 conv (channels_last).

    Timed in the same `time_pair` loop as a model (``fns`` appended to the model's), so the
    machine's load slows both alike. On some CPUs the conv (oneDNN) runs well above torch.mm's
    BLAS, so a floor should use the faster of the two.
    """

    fns: list[Callable[[], object]]
    flops: list[float]  # per fn

    def gflops(self, times_ms: list[float]) -> tuple[float, float]:
        """(mm, conv) GFLOP/s from the fns' best times (ms)."""
        mm, conv = (f / (t * 1e6) for f, t in zip(self.flops, times_ms, strict=True))
        return mm, conv


def peak_probe(dtype: torch.dtype, map_hw: tuple[int, int], device: str = "cpu", n: int = 0):
    """A `PeakProbe` in ``dtype``: the conv runs on a map_hw map; ``n`` 0 picks `MM_SIDE`."""
    n = n or MM_SIDE[torch.device(device).type]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    layout = torch.channels_last
    x = torch.randn(1, 256, *map_hw, device=device).to(dtype).contiguous(memory_format=layout)
    w = torch.randn(256, 256, 3, 3, device=device).to(dtype).contiguous(memory_format=layout)

    def mm() -> Tensor:
        with torch.inference_mode():
            return torch.mm(a, b)

    def conv() -> Tensor:
        with torch.inference_mode():
            return F.conv2d(x, w, padding=1)

    conv_flop = 2.0 * 256 * 256 * 9 * map_hw[0] * map_hw[1]
    return PeakProbe([mm, conv], [2.0 * n**3, conv_flop])


class Floors:
    """The floor of batch-1 inference per dtype: model FLOPs / the machine's measured peak.

    The peak kernels (`PeakProbe`: a large torch.mm and the head's 3x3 256->256 conv at the P3
    size) are timed in the same interleaved loop as each inference row (ours, torchvision, mm,
    conv), so load on a shared machine slows the model and the peak alike. A dtype's floor uses
    the best peak seen in the run; a row's ratio is its best time over its batch's floor.
    """

    def __init__(
        self,
        gflop: float,
        hw: tuple[int, int],
        device: str,
        quick: bool,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.gflop, self.hw, self.device, self.quick, self.clock = gflop, hw, device, quick, clock
        self.probes: dict[str, PeakProbe] = {}
        self.peaks: dict[str, tuple[float, float]] = {}  # dtype name -> (mm, conv) GFLOP/s
        self.timed: list[tuple[str, str, float, int]] = []  # (dtype, row, ours min ms, batch)

    def probe(self, dtype: str) -> PeakProbe:
        if dtype not in self.probes:
            map_hw = (self.hw[0] // 8, self.hw[1] // 8)
            side = 512 if self.quick else 0
            self.probes[dtype] = peak_probe(DTYPES[dtype], map_hw, self.device, side)
        return self.probes[dtype]

    def time_row(self, dtype: str, row: str, batch: int, fns: list, repeats: int) -> list:
        """`time_pair` of ``fns`` and the dtype's peak kernels; returns the fns' (min, median)."""
        probe = self.probe(dtype)
        got = time_pair(fns + probe.fns, repeats, self.device, self.clock)
        peak = probe.gflops([t[0] for t in got[len(fns) :]])
        old = self.peaks.get(dtype, (0.0, 0.0))
        self.peaks[dtype] = (max(old[0], peak[0]), max(old[1], peak[1]))
        self.timed.append((dtype, row, got[0][0], batch))
        return got[: len(fns)]

    def floor_ms(self, dtype: str) -> float:
        return self.gflop / max(self.peaks[dtype]) * 1e3

    def rows(self) -> list[Row]:
        """One row per dtype: the floor, its peaks, and ours / floor of each row in that dtype."""
        out = []
        for dtype, (mm, conv) in self.peaks.items():
            floor = self.floor_ms(dtype)
            ratios = ", ".join(f"{row.split(' b')[0]} b{batch} {ms / (floor * batch):.2f}x"
                               for d, row, ms, batch in self.timed if d == dtype)  # fmt: skip
            note = (f"{self.gflop:.1f} GFLOP / max(mm {mm:.0f}, conv {conv:.0f}) GFLOP/s; "
                    f"ours / floor: {ratios}")  # fmt: skip
            out.append(Row(f"floor {dtype} b1 {self.hw[0]}x{self.hw[1]}", (floor, floor), None,
                           note))  # fmt: skip
        return out


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
