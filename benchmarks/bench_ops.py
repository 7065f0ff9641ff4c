"""Speed (and memory) of our compiled ops against torchvision.

NMS at 1k / 5k / 20k boxes against ``torchvision.ops.nms``; sigmoid focal loss forward + backward
at 20,000 points x 80 classes against ``torchvision.ops.sigmoid_focal_loss`` (its Python
composition, one-hot targets made beforehand, autograd for the backward). CUDA rows are added when
a GPU is visible. Prints a markdown table.

    python benchmarks/bench_ops.py            # full table
    python benchmarks/bench_ops.py --quick    # tiny sizes, one repetition (smoke test)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision

from fcos_core.layers import SigmoidFocalLoss, _ops, nms

NMS_SIZES = (1000, 5000, 20000)
FOCAL_SHAPE = (20000, 80)
QUICK_NMS_SIZES = (200,)
QUICK_FOCAL_SHAPE = (500, 8)
IOU_THRESHOLD = 0.5
IMAGE_SIZE = 1000.0  # boxes lie in a square image of this side
BOX_SIZE_RANGE = (10.0, 200.0)
GAMMA, ALPHA = 2.0, 0.25
MIB = 2.0**20


@dataclass
class Row:
    op: str
    size: str
    device: str
    ours_ms: tuple[float, float]
    theirs_ms: tuple[float, float]
    ours_mib: float | None = None
    theirs_mib: float | None = None


def time_ms(fn: Callable[[], object], repeats: int, device: str) -> tuple[float, float]:
    """(min, median) wall time of ``fn`` in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times), statistics.median(times)


def peak_mib(fn: Callable[[], object], device: str) -> float | None:
    """Peak memory allocated by tensors while ``fn`` runs, in MiB (None if unmeasurable)."""
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / MIB
    return cpu_peak_mib(fn)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silences file descriptor 2 (the profiler back end logs start/stop lines there)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def cpu_peak_mib(fn: Callable[[], object]) -> float | None:
    """CPU peak from the profiler's memory timeline (tensors created minus destroyed)."""
    try:
        from torch.profiler._memory_profiler import Action

        activities = [torch.profiler.ProfilerActivity.CPU]
        with (
            quiet_stderr(),
            torch.profiler.profile(
                activities=activities, profile_memory=True, record_shapes=True, with_stack=True
            ) as prof,
        ):
            fn()
        current = peak = 0
        for _, action, (key, _), size in prof._memory_profile().timeline:
            if key.device.type == "cpu":
                current += size if action == Action.CREATE else 0
                current -= size if action == Action.DESTROY else 0
                peak = max(peak, current)
        return peak / MIB
    except Exception:  # private profiler API: report "n/a" rather than fail the benchmark
        return None


def random_boxes(n: int, device: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """boxes Tensor[n, 4] xyxy and scores Tensor[n]."""
    low, high = BOX_SIZE_RANGE
    xy = torch.rand(n, 2, generator=gen) * IMAGE_SIZE
    wh = low + torch.rand(n, 2, generator=gen) * (high - low)
    boxes = torch.cat([xy, xy + wh], dim=1)
    return boxes.to(device), torch.rand(n, generator=gen).to(device)


def bench_nms(n: int, device: str, repeats: int) -> Row:
    boxes, scores = random_boxes(n, device, torch.Generator().manual_seed(n))
    keep = nms(boxes, scores, IOU_THRESHOLD)
    expected = torchvision.ops.nms(boxes, scores, IOU_THRESHOLD)
    if not torch.equal(keep, expected):
        raise AssertionError(f"NMS at {n} boxes on {device}: keep list differs from torchvision")
    return Row(
        "nms",
        f"{n} boxes ({keep.numel()} kept)",
        device,
        time_ms(lambda: nms(boxes, scores, IOU_THRESHOLD), repeats, device),
        time_ms(lambda: torchvision.ops.nms(boxes, scores, IOU_THRESHOLD), repeats, device),
    )


def bench_focal(rows: int, classes: int, device: str, repeats: int) -> Row:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, classes, generator=gen).to(device).requires_grad_()
    targets = torch.randint(0, classes + 1, (rows,), generator=gen).to(device)
    one_hot = F.one_hot(targets, classes + 1)[:, 1:].to(logits.dtype)
    ours_loss = SigmoidFocalLoss(GAMMA, ALPHA)

    def ours() -> torch.Tensor:
        return torch.autograd.grad(ours_loss(logits, targets), logits)[0]

    def theirs() -> torch.Tensor:
        loss = torchvision.ops.sigmoid_focal_loss(logits, one_hot, ALPHA, GAMMA, reduction="sum")
        return torch.autograd.grad(loss, logits)[0]

    return Row(
        "focal fwd+bwd",
        f"{rows} x {classes}",
        device,
        time_ms(ours, repeats, device),
        time_ms(theirs, repeats, device),
        peak_mib(ours, device),
        peak_mib(theirs, device),
    )


def format_table(rows: list[Row]) -> str:
    def mib(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    lines = [
        "| op | size | device | ours min / median ms | torchvision min / median ms "
        "| speed-up (median) | ours peak MiB | torchvision peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r.theirs_ms[1] / max(r.ours_ms[1], 1e-9)
        lines.append(
            f"| {r.op} | {r.size} | {r.device} | {r.ours_ms[0]:.3f} / {r.ours_ms[1]:.3f} "
            f"| {r.theirs_ms[0]:.3f} / {r.theirs_ms[1]:.3f} | {ratio:.1f}x "
            f"| {mib(r.ours_mib)} | {mib(r.theirs_mib)} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    nms_sizes = QUICK_NMS_SIZES if args.quick else NMS_SIZES
    focal_shape = QUICK_FOCAL_SHAPE if args.quick else FOCAL_SHAPE
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        rows += [bench_nms(n, device, repeats) for n in nms_sizes]
        rows.append(bench_focal(*focal_shape, device, repeats))
    path = "compiled extension" if _ops.HAS_EXT else "pure-PyTorch fallback (no extension)"
    print(
        f"ours: {path}; torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"CPU threads {args.threads}, {repeats} timed run(s) each"
    )
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
