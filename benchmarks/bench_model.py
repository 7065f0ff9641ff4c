"""Whole-model speed of our FCOS against torchvision's ``fcos_resnet50_fpn``, same weights, input.

A randomly initialised torchvision model (norm statistics and head biases tuned so it detects
things) is converted with `fcos_core.utils.torchvision_convert` into our
configs/fcos/fcos_torchvision_R_50_FPN.yaml model, or ``--weights`` gives a torchvision state dict
(e.g. the COCO checkpoint) to use instead. Both run in this process, interleaved, on the same
[0, 1] RGB images; each side includes its own normalisation (torchvision: its transform, set to
the image size so it does not rescale; ours: mean/std + padding to 32).

Rows: inference batch 1 (and batch 4 with ``--batch4``) fp32; our fast path
(`fcos_core.utils.fast_path`) against torchvision fp32, with the fraction of our fp32 detections
it matches at IoU >= 0.9 (same label); one training step (forward + backward + SGD) at batch 2;
peak RSS of one inference in a fresh process; the floor (model FLOPs / measured matmul peak).

    python benchmarks/bench_model.py               # 800x1216 inference, 512x640 training
    python benchmarks/bench_model.py --quick       # tiny sizes, one repetition (smoke test)
    python benchmarks/bench_model.py --batch4 --fast-autocast bf16 --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from fcos_core.config import cfg as default_cfg  # noqa: E402
from fcos_core.data.coco_classes import UNUSED_COCO_ID_SLOTS  # noqa: E402
from fcos_core.modeling.detector import build_detection_model  # noqa: E402
from fcos_core.structures.bounding_box import BoxList  # noqa: E402
from fcos_core.structures.boxlist_ops import boxlist_iou  # noqa: E402
from fcos_core.structures.image_list import to_image_list  # noqa: E402
from fcos_core.utils.fast_path import prepare_fast_inference  # noqa: E402
from fcos_core.utils.torchvision_convert import convert_for_model  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "fcos", "fcos_torchvision_R_50_FPN.yaml")
FULL = {"infer": (800, 1216), "train": (512, 640)}
QUICK = {"infer": (128, 192), "train": (128, 160)}
MATCH_IOU = 0.9
MIB = 2.0**20


@dataclass
class Row:
    name: str
    ours: tuple[float, float]
    theirs: tuple[float, float] | None
    note: str = ""
    unit: str = "ms"


@torch.no_grad()
def randomize_torchvision(tv: nn.Module, seed: int) -> None:
    """Non-trivial norm statistics; head biases that give a few hundred candidate boxes."""
    g = torch.Generator().manual_seed(seed)
    for m in tv.modules():
        if isinstance(m, (FrozenBatchNorm2d, nn.GroupNorm)):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.1, generator=g)
        if isinstance(m, FrozenBatchNorm2d):
            m.running_mean.normal_(0.0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
    cls = tv.head.classification_head.cls_logits
    cls.weight.normal_(0.0, 0.02, generator=g)
    cls.bias.normal_(-2.5, 0.5, generator=g)
    cls.weight[list(UNUSED_COCO_ID_SLOTS)] = 0.0
    cls.bias[list(UNUSED_COCO_ID_SLOTS)] = -1e4
    tv.head.regression_head.bbox_reg.bias.uniform_(0.5, 3.0, generator=g)
    tv.head.regression_head.bbox_ctrness.bias.normal_(0.5, 0.5, generator=g)


def build_torchvision() -> nn.Module:
    """``fcos_resnet50_fpn`` as built for its COCO weights: FrozenBN, stem and layer1 frozen.

    (Without ``weights`` torchvision would build trainable BatchNorm and train every layer.)
    """
    backbone = torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(
        backbone, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256)
    )
    return torchvision.models.detection.FCOS(backbone, num_classes=91)


def build_models(weights: str | None, image_hw: tuple[int, int]) -> tuple[nn.Module, nn.Module]:
    """(torchvision model, our model with the converted weights), both in eval."""
    torch.manual_seed(0)
    tv = build_torchvision()
    if weights:
        tv.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        randomize_torchvision(tv, seed=0)
    tv.transform.min_size, tv.transform.max_size = (min(image_hw),), max(image_hw)
    cfg = default_cfg.clone()
    cfg.merge_from_file(CONFIG)
    cfg.MODEL.DEVICE = "cpu"
    ours = build_detection_model(cfg)
    ours.load_state_dict(convert_for_model(tv.state_dict(), ours))
    return tv.eval(), ours.eval()


def ours_runner(model: nn.Module, mean: Tensor, std: Tensor) -> Callable[[list[Tensor]], list]:
    """Our pipeline from [0, 1] images: normalise, pad to 32, detect."""

    def run(images: list[Tensor]) -> list[BoxList]:
        with torch.no_grad():
            return model(to_image_list([(x - mean) / std for x in images], 32))

    return run


def tv_runner(model: nn.Module) -> Callable[[list[Tensor]], list]:
    def run(images: list[Tensor]) -> list[dict[str, Tensor]]:
        with torch.no_grad():
            return model(images)

    return run


def time_pair(fns: list[Callable[[], object]], repeats: int) -> list[tuple[float, float]]:
    """(min, median) ms of each fn, one warm-up each, then the fns interleaved per repeat."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append((time.perf_counter() - start) * 1e3)
    return [(min(t), statistics.median(t)) for t in times]


def matched_fraction(reference: BoxList, other: BoxList) -> float:
    """Fraction of ``reference`` boxes with a same-label box in ``other`` at IoU >= 0.9."""
    if len(reference) == 0:
        return 1.0 if len(other) == 0 else 0.0
    if len(other) == 0:
        return 0.0
    iou = boxlist_iou(reference, other)  # (N_ref, N_other)
    same = reference.get_field("labels")[:, None] == other.get_field("labels")[None, :]
    return float(((iou >= MATCH_IOU) & same).any(dim=1).float().mean())


def images_for(batch: int, hw: tuple[int, int], seed: int) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, *hw, generator=g) for _ in range(batch)]


def inference_rows(args, tv, ours, mean, std) -> tuple[list[Row], list[BoxList]]:
    """fp32 rows (batch 1, optionally 4) and the fast-path row."""
    hw = (QUICK if args.quick else FULL)["infer"]
    run_ours, run_tv = ours_runner(ours, mean, std), tv_runner(tv)
    rows, reference = [], []
    for batch in (1, 4) if args.batch4 and not args.quick else (1,):
        images = images_for(batch, hw, seed=batch)
        fns = [lambda x=images: run_ours(x), lambda x=images: run_tv(x)]
        got = time_pair(fns, args.repeats)
        dets = run_ours(images)
        reference = reference or dets
        count = sum(len(d) for d in dets)
        rows.append(Row(f"inference fp32 b{batch} {hw[0]}x{hw[1]}", *got, f"{count} dets"))
    images = images_for(1, hw, seed=1)
    for autocast in dict.fromkeys(["", args.fast_autocast]):
        run_fast = ours_runner(prepare_fast_inference(ours, autocast=autocast), mean, std)
        fns = [lambda f=run_fast: f(images), lambda: run_tv(images)]
        got = time_pair(fns, args.repeats)
        agree = matched_fraction(reference[0], run_fast(images)[0])
        name = f"fast path ({autocast or 'fp32'}) b1 {hw[0]}x{hw[1]}"
        rows.append(Row(name, *got, f"{agree:.1%} of fp32 dets matched"))
    return rows, reference


def train_row(args, tv, ours) -> Row:
    """One SGD step (forward + backward + step) at batch 2, both models on the same targets."""
    hw = (QUICK if args.quick else FULL)["train"]
    images = images_for(2, hw, seed=3)
    boxes = torch.tensor([[10.0, 20.0, 90.0, 100.0], [40.0, 30.0, 120.0, 110.0]])
    labels = torch.tensor([1, 18])
    targets = [BoxList(boxes.clone(), (hw[1], hw[0])) for _ in images]
    for t in targets:
        t.add_field("labels", labels.clone())
    tv_targets = [{"boxes": boxes.clone(), "labels": labels.clone()} for _ in images]
    batch = to_image_list(images, 32)  # normalisation is irrelevant to the cost here
    opt_ours = torch.optim.SGD([p for p in ours.parameters() if p.requires_grad], lr=1e-5)
    opt_tv = torch.optim.SGD([p for p in tv.parameters() if p.requires_grad], lr=1e-5)
    tv.transform.min_size, tv.transform.max_size = (min(hw),), max(hw)

    def step(model, optimizer, *inputs):
        optimizer.zero_grad(set_to_none=True)
        losses = model(*inputs)
        sum(losses.values()).backward()
        optimizer.step()

    ours.train(), tv.train()
    got = time_pair([lambda: step(ours, opt_ours, batch, targets),
                     lambda: step(tv, opt_tv, images, tv_targets)], args.repeats)  # fmt: skip
    ours.eval(), tv.eval()
    return Row(f"train step fp32 b2 {hw[0]}x{hw[1]}", *got)


def peak_gflops(
    dtype: torch.dtype, n: int, map_hw: tuple[int, int], repeats: int
) -> tuple[float, float]:
    """Best GFLOP/s in ``dtype`` of an n^3 torch.mm and of a 3x3 256->256 conv on a map_hw map.

    On some CPUs the conv (oneDNN) runs well above torch.mm's BLAS, so both are measured and the
    floor uses the faster.
    """
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    x = torch.randn(1, 256, *map_hw).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fns = [lambda: torch.mm(a, b), lambda: F.conv2d(x, w, padding=1)]
        (mm_ms, _), (conv_ms, _) = time_pair(fns, max(repeats, 3))
    conv_flop = 2.0 * 256 * 256 * 9 * x.shape[2] * x.shape[3]
    return 2.0 * n**3 / (mm_ms * 1e6), conv_flop / (conv_ms * 1e6)


def floor_rows(args, ours, mean, std) -> list[Row]:
    """FLOPs of our batch-1 inference / measured peak, fp32 and the fast-path dtype.

    The peak is the faster of an n^3 torch.mm and the head's 3x3 256->256 conv at the P3 size.
    """
    hw = (QUICK if args.quick else FULL)["infer"]
    images = images_for(1, hw, seed=1)
    counter = FlopCounterMode(display=False)
    with counter:
        ours_runner(ours, mean, std)(images)
    gflop = counter.get_total_flops() / 1e9
    n = 512 if args.quick else 2048
    rows = []
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    for name in ["fp32"] + (["bf16"] if args.fast_autocast == "bf16" else []):
        mm, conv = peak_gflops(dtypes[name], n, (hw[0] // 8, hw[1] // 8), args.repeats)
        floor = gflop / max(mm, conv) * 1e3
        note = f"{gflop:.1f} GFLOP / max(mm {mm:.0f}, conv {conv:.0f}) GFLOP/s"
        rows.append(Row(f"floor {name} b1 {hw[0]}x{hw[1]}", (floor, floor), None, note))
    return rows


def rss_child(which: str, quick: bool) -> None:
    """(In a fresh process) build only ``which`` model, run one image; print peak RSS in MiB."""
    hw = (QUICK if quick else FULL)["infer"]
    images = images_for(1, hw, seed=1)
    if which == "tv":
        tv = build_torchvision()
        tv.transform.min_size, tv.transform.max_size = (min(hw),), max(hw)
        tv_runner(tv.eval())(images)
    else:
        cfg = default_cfg.clone()
        cfg.merge_from_file(CONFIG)
        cfg.MODEL.DEVICE = "cpu"
        mean = torch.tensor(cfg.INPUT.PIXEL_MEAN).view(3, 1, 1)
        std = torch.tensor(cfg.INPUT.PIXEL_STD).view(3, 1, 1)
        ours_runner(build_detection_model(cfg).eval(), mean, std)(images)
    print(peak_rss_mib())


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


def rss_row(args) -> Row:
    """Peak RSS (MiB) of a fresh process per model: import, build, one inference."""
    children = []
    for which in ("ours", "tv"):  # both at once: each process has its own peak
        cmd = [sys.executable, os.path.abspath(__file__), "--rss-child", which,
               "--threads", str(args.threads)] + (["--quick"] if args.quick else [])  # fmt: skip
        children.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    values = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"peak RSS child failed: {' '.join(child.args)}")
        values.append(float(out.strip().splitlines()[-1]))
    hw = (QUICK if args.quick else FULL)["infer"]
    return Row(f"peak RSS inference b1 {hw[0]}x{hw[1]}", (values[0],) * 2, (values[1],) * 2,
               "fresh process each", unit="MiB")  # fmt: skip


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    print("| measurement | ours min / median | torchvision min / median | ratio (min) | note |")
    print("|---|---|---|---|---|")
    for r in rows:
        ours = f"{r.ours[0]:.1f} / {r.ours[1]:.1f} {r.unit}"
        theirs = f"{r.theirs[0]:.1f} / {r.theirs[1]:.1f} {r.unit}" if r.theirs else "-"
        ratio = f"{r.ours[0] / r.theirs[0]:.2f}" if r.theirs else "-"
        print(f"| {r.name} | {ours} | {theirs} | {ratio} | {r.note} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row after warm-up")
    p.add_argument("--batch4", action="store_true", help="add the batch-4 inference row (slow)")
    p.add_argument("--fast-autocast", default="", choices=["", "bf16", "fp16"],
                   help="autocast dtype of the fast-path row")  # fmt: skip
    p.add_argument("--weights", help="torchvision FCOS state dict to use instead of random init")
    p.add_argument("--rss-child", choices=["ours", "tv"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 1
    return args


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args.rss_child, args.quick)
        return []
    tv, ours = build_models(args.weights, (QUICK if args.quick else FULL)["infer"])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    rows, _ = inference_rows(args, tv, ours, mean, std)
    rows += floor_rows(args, ours, mean, std)
    rows.append(train_row(args, tv, ours))
    rows.append(rss_row(args))
    header = (f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
              f"{args.threads} thread(s), {args.repeats} repeat(s)")  # fmt: skip
    print_table(rows, header)
    return rows


if __name__ == "__main__":
    main()
