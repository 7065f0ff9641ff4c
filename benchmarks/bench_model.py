"""Whole-model speed of our FCOS against torchvision's ``fcos_resnet50_fpn``, same weights, input.

A randomly initialised torchvision model (norm statistics and head biases tuned so it detects
things) is converted with `fcos_core.checkpoint.torchvision_convert` into our
configs/fcos/fcos_torchvision_R_50_FPN.yaml model, or ``--weights`` gives a torchvision state dict
(e.g. the COCO checkpoint) to use instead. Both run in this process, interleaved, on the same
[0, 1] RGB images; each side includes its own normalisation (torchvision: its transform, set to
the image size so it does not rescale; ours: mean/std + padding to 32).

Rows: inference batch 1 (and batch 4 with ``--batch4``) float32; our fast path
(`fcos_core.export.fast_path`) against torchvision float32, with the fraction of our float32
detections it matches at IoU >= 0.9 (same label), also compiled with ``--compile`` and at batch 8
on CUDA; one training step (forward + backward + SGD) at batch 2, ours in float32 and under
``--train-autocast`` (auto: bfloat16 on CPUs with native bfloat16) against torchvision's float32
step; peak memory (CPU: RSS of one inference
in a fresh process; CUDA: max allocated during one inference); the floor (model FLOPs / measured
peak). ``--ap-weights`` adds the fast path's AP and agreement on the quickstart val split
(`fast_path_ap.py`). On a machine with a GPU the same command runs there (``--device``).

    python benchmarks/bench_model.py               # 800x1216 inference, 512x640 training
    python benchmarks/bench_model.py --quick       # tiny sizes, one repetition (smoke test)
    python benchmarks/bench_model.py --batch4 --compile --ap-weights W  # W: quickstart weights
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torchvision
from bench_util import (
    Floors,
    Row,
    cuda_peak_mib,
    images_for,
    peak_rss_mib,
    print_table,
    time_pair,
)
from fast_path_ap import agreement, matched_count, print_agreement
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

from fcos_core.checkpoint.torchvision_convert import convert_for_model
from fcos_core.config import cfg as default_cfg
from fcos_core.data.coco_classes import UNUSED_COCO_ID_SLOTS
from fcos_core.export.fast_path import prepare_fast_inference
from fcos_core.modeling.detector import build_detection_model
from fcos_core.structures.bounding_box import BoxList
from fcos_core.structures.image_list import to_image_list
from fcos_core.utils.precision import DTYPES, PRECISIONS, autocast_dtype

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "fcos", "fcos_torchvision_R_50_FPN.yaml")
FULL = {"infer": (800, 1216), "train": (512, 640)}
QUICK = {"infer": (128, 192), "train": (128, 160)}
# Batch of the extra fast-path throughput row on CUDA.
CUDA_FAST_BATCH = 8


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


def build_models(
    weights: str | None, image_hw: tuple[int, int], device: str
) -> tuple[nn.Module, nn.Module]:
    """(torchvision model, our model with the converted weights), both in eval on ``device``."""
    torch.manual_seed(0)
    tv = build_torchvision()
    if weights:
        tv.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        randomize_torchvision(tv, seed=0)
    tv.transform.min_size, tv.transform.max_size = (min(image_hw),), max(image_hw)
    ours = build_detection_model(our_config())
    ours.load_state_dict(convert_for_model(tv.state_dict(), ours))
    return tv.to(device).eval(), ours.to(device).eval()


def our_config():
    cfg = default_cfg.clone()
    cfg.merge_from_file(CONFIG)
    cfg.MODEL.DEVICE = "cpu"
    return cfg


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


def matched_note(reference: list[BoxList], other: list[BoxList]) -> str:
    matched = sum(matched_count(r, o) for r, o in zip(reference, other, strict=True))
    total = sum(len(r) for r in reference)
    return f"{matched / max(total, 1):.1%} of float32 dets matched"


def detections_note(detections: list[BoxList]) -> str:
    """Count and score range: near-equal scores mean any rounding change can reorder them."""
    scores = torch.cat([d.get_field("scores") for d in detections])
    if scores.numel() == 0:
        return "0 dets"
    return f"{scores.numel()} dets, scores {scores.min():.3f}-{scores.max():.3f}"


def model_gflop(ours: nn.Module, mean: Tensor, std: Tensor, hw: tuple[int, int], dev: str):
    """FLOPs (GFLOP, 2 per multiply-add) of our batch-1 inference at ``hw``."""
    counter = FlopCounterMode(display=False)
    with counter:
        ours_runner(ours, mean, std)(images_for(1, hw, seed=1, device=dev))
    return counter.get_total_flops() / 1e9


def inference_rows(args, tv, ours, mean, std) -> list[Row]:
    """float32 rows (batch 1, optionally 4), fast-path rows (batch 1; batch 8 on CUDA; compiled),
    then the floor rows (`Floors`), measured alongside them."""
    hw, dev = (QUICK if args.quick else FULL)["infer"], args.device
    run_ours, run_tv = ours_runner(ours, mean, std), tv_runner(tv)
    floors = Floors(model_gflop(ours, mean, std, hw, dev), hw, dev, args.quick, args.clock)
    rows = []
    for batch in (1, 4) if args.batch4 and not args.quick else (1,):
        images = images_for(batch, hw, seed=batch, device=dev)
        name = f"inference float32 b{batch} {hw[0]}x{hw[1]}"
        got = floors.time_row("float32", name, batch, [lambda x=images: run_ours(x),
                              lambda x=images: run_tv(x)], args.repeats)  # fmt: skip
        rows.append(Row(name, *got, detections_note(run_ours(images))))
    autocasts = list(dict.fromkeys(["float32", args.fast_autocast]))
    variants = [(a, False) for a in autocasts] + [(a, True) for a in autocasts if args.compile]
    batches = (1, CUDA_FAST_BATCH) if dev.startswith("cuda") and not args.quick else (1,)
    for batch in batches:
        images = images_for(batch, hw, seed=batch, device=dev)
        reference = run_ours(images)
        for autocast, compiled in variants if batch == 1 else variants[-1:]:
            fast = prepare_fast_inference(ours, autocast=autocast, compiled=compiled)
            run_fast = ours_runner(fast, mean, std)
            label = f"fast path ({autocast}{', compiled' if compiled else ''})"
            name = f"{label} b{batch} {hw[0]}x{hw[1]}"
            got = floors.time_row(autocast, name, batch,
                                  [lambda f=run_fast, x=images: f(x), lambda x=images: run_tv(x)],
                                  args.repeats)  # fmt: skip
            note = matched_note(reference, run_fast(images))
            if batch > 1:
                note += f"; {batch * 1e3 / got[0][0]:.0f} img/s"
            rows.append(Row(name, *got, note))
    return rows + floors.rows()


def train_row(args, tv, ours, dtype: str) -> Row:
    """One SGD step (forward + backward + step) at batch 2, both models on the same targets:
    ours under ``dtype`` autocast (weights, gradients and losses stay float32), torchvision's
    in float32."""
    hw, dev = (QUICK if args.quick else FULL)["train"], args.device
    images = images_for(2, hw, seed=3, device=dev)
    boxes = torch.tensor([[10.0, 20.0, 90.0, 100.0], [40.0, 30.0, 120.0, 110.0]], device=dev)
    labels = torch.tensor([1, 18], device=dev)
    targets = [BoxList(boxes.clone(), (hw[1], hw[0])) for _ in images]
    for t in targets:
        t.add_field("labels", labels.clone())
    tv_targets = [{"boxes": boxes.clone(), "labels": labels.clone()} for _ in images]
    batch = to_image_list(images, 32)  # normalisation is irrelevant to the cost here
    opt_ours = torch.optim.SGD([p for p in ours.parameters() if p.requires_grad], lr=1e-5)
    opt_tv = torch.optim.SGD([p for p in tv.parameters() if p.requires_grad], lr=1e-5)
    tv.transform.min_size, tv.transform.max_size = (min(hw),), max(hw)

    def step(model, optimizer, *inputs, autocast_to=None):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(dev.split(":")[0], autocast_to, enabled=autocast_to is not None):
            losses = model(*inputs)
        sum(loss.float() for loss in losses.values()).backward()
        optimizer.step()

    ours.train(), tv.train()
    to = None if dtype == "float32" else DTYPES[dtype]
    got = time_pair([lambda: step(ours, opt_ours, batch, targets, autocast_to=to),
                     lambda: step(tv, opt_tv, images, tv_targets)], args.repeats, dev,
                    args.clock)  # fmt: skip
    ours.eval(), tv.eval()
    note = "" if to is None else "torchvision in float32"
    return Row(f"train step {dtype} b2 {hw[0]}x{hw[1]}", *got, note)


def rss_child(which: str, quick: bool) -> None:
    """(In a fresh process) build only ``which`` model, run one image; print peak RSS in MiB."""
    hw = (QUICK if quick else FULL)["infer"]
    images = images_for(1, hw, seed=1)
    if which == "tv":
        tv = build_torchvision()
        tv.transform.min_size, tv.transform.max_size = (min(hw),), max(hw)
        tv_runner(tv.eval())(images)
    else:
        cfg = our_config()
        mean = torch.tensor(cfg.INPUT.PIXEL_MEAN).view(3, 1, 1)
        std = torch.tensor(cfg.INPUT.PIXEL_STD).view(3, 1, 1)
        ours_runner(build_detection_model(cfg).eval(), mean, std)(images)
    print(peak_rss_mib())


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


def memory_row(args, tv, ours, mean, std) -> Row:
    """Peak memory of one batch-1 inference: CPU RSS (fresh processes) or CUDA max allocated."""
    if not args.device.startswith("cuda"):
        return rss_row(args)
    hw = (QUICK if args.quick else FULL)["infer"]
    images = images_for(1, hw, seed=1, device=args.device)
    values = [cuda_peak_mib(lambda r=run: r(images), args.device)
              for run in (ours_runner(ours, mean, std), tv_runner(tv))]  # fmt: skip
    return Row(f"peak CUDA memory inference b1 {hw[0]}x{hw[1]}", (values[0],) * 2,
               (values[1],) * 2, "max allocated above the weights", unit="MiB")  # fmt: skip


def resolve_precision(flag: str, value: str, device: str) -> str:
    """The dtype name ``value`` means on ``device`` ("auto": float16 on CUDA, bfloat16 on CPUs
    with native bfloat16, else float32)."""
    dtype = autocast_dtype(flag, value, torch.device(device).type) or torch.float32
    return next(name for name, d in DTYPES.items() if d == dtype)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row after warm-up")
    p.add_argument("--batch4", action="store_true", help="add the batch-4 inference row (slow)")
    p.add_argument("--fast-autocast", default="auto", choices=PRECISIONS,
                   help="autocast of the fast-path row (auto: float16 on CUDA, bfloat16 on CPUs "
                        "with native bfloat16, else float32)")  # fmt: skip
    p.add_argument(
        "--train-autocast",
        default="auto",
        choices=PRECISIONS,
        help="autocast of our extra train-step row (auto as above; float32: no row)",
    )
    p.add_argument("--compile", action="store_true", help="add a torch.compile fast-path row")
    p.add_argument("--cpu-time", action="store_true",
                   help="time with this process's CPU time (needs --threads 1): on a shared, "
                        "busy machine that barely moves, where the wall clock does")  # fmt: skip
    p.add_argument("--weights", help="torchvision FCOS state dict to use instead of random init")
    p.add_argument("--ap-weights", help="trained quickstart checkpoint: add fast_path_ap.py rows")
    p.add_argument("--rss-child", choices=["ours", "tv"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 1
    if args.cpu_time and (args.threads != 1 or args.device != "cpu"):
        p.error(f"--cpu-time needs --threads 1 on the cpu, got --threads {args.threads} "
                f"--device {args.device}")  # fmt: skip
    args.clock = time.process_time if args.cpu_time else time.perf_counter
    args.fast_autocast = resolve_precision("--fast-autocast", args.fast_autocast, args.device)
    args.train_autocast = resolve_precision("--train-autocast", args.train_autocast, args.device)
    return args


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args.rss_child, args.quick)
        return []
    tv, ours = build_models(args.weights, (QUICK if args.quick else FULL)["infer"], args.device)
    mean = torch.tensor([0.485, 0.456, 0.406], device=args.device).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=args.device).view(3, 1, 1)
    rows = inference_rows(args, tv, ours, mean, std)
    for dtype in dict.fromkeys(["float32", args.train_autocast]):
        rows.append(train_row(args, tv, ours, dtype))
    rows.append(memory_row(args, tv, ours, mean, std))
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    header = (f"torch {torch.__version__}, torchvision {torchvision.__version__}, {where}, "
              f"{args.threads} thread(s), {args.repeats} repeat(s)"
              f"{', CPU time' if args.cpu_time else ''}")  # fmt: skip
    print_table(rows, header)
    if args.ap_weights:
        autocasts = [args.fast_autocast] if args.fast_autocast != "float32" else []
        print()
        print_agreement(agreement(fast_path_ap_config(), args.ap_weights, autocasts, args.device),
                        f"fast path on the quickstart val split ({args.ap_weights})")  # fmt: skip
    return rows


def fast_path_ap_config() -> str:
    return os.path.join(ROOT, "configs", "quickstart", "fcos_quickstart.yaml")


if __name__ == "__main__":
    main()
