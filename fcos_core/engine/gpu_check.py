"""The in-process checks of ``tools/check_gpu.py``: kernels, training steps, extension state.

Each ``*_rows`` function runs one section on ``device`` and returns table rows; an exception
inside a check becomes a FAIL row of that check, so one broken check does not hide the others.
On "cpu" the same code runs at tiny sizes (CI's smoke test); there the CPU kernels are compared
with the pure-PyTorch references instead of CUDA with CPU.

Timing on CUDA: kernels are asynchronous, so every clock read is preceded by
``torch.cuda.synchronize``; peak memory is ``torch.cuda.max_memory_allocated`` after a reset.
"""

from __future__ import annotations

import itertools
import os
import socket
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from yacs.config import CfgNode

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
NMS_SETS = 300
NMS_THRESHOLDS = (0.3, 0.5, 0.6, 0.7)
FOCAL_TOL = 1e-5
# Values tried for each extra (convention) argument of fcos::nms beyond (boxes, scores, thr).
CONVENTION_VALUES = {"bool": (False, True), "int": (0, 1), "float": (0.0, 1.0)}


@dataclass
class Row:
    """One line of the final table."""

    section: str
    check: str
    status: str
    value: str = ""
    note: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sync(device: torch.device) -> None:
    """Wait for queued kernels (CUDA is asynchronous), so a clock read means work finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_check(section: str, check: str, fn: Callable[[], tuple[str, str, str]]) -> Row:
    """Run ``fn() -> (status, value, note)``; an exception becomes a FAIL row with its message."""
    start = time.time()
    try:
        status, value, note = fn()
    except Exception as exc:  # noqa: BLE001 - every failure must reach the table
        last = traceback.format_exc().strip().splitlines()[-1]
        status, value, note = FAIL, "", f"{type(exc).__name__}: {exc}"[:300] or last
    return Row(section, check, status, value, note, round(time.time() - start, 1))


# ----------------------------------------------------------------------------- extension state
def extension_rows(device: str) -> list[Row]:
    """Whether the extension loaded and which devices its kernels cover."""
    from fcos_core.layers import _ops

    def loaded() -> tuple[str, str, str]:
        if not _ops.HAS_EXT:
            return FAIL, "not loaded", _ops.EXT_UNAVAILABLE_REASON
        return PASS, "loaded", _ops.extension_summary()

    def kernels() -> tuple[str, str, str]:
        if not _ops.HAS_EXT:
            return SKIP, "", "extension not loaded"
        dev = torch.device(device)
        missing = [op for op in _ops.OP_NAMES if not _ops.has_kernel(op, dev.type)]
        if missing:
            hint = "rebuild with FORCE_CUDA=1 (see setup.py)" if dev.type == "cuda" else ""
            return FAIL, f"missing: {', '.join(missing)}", hint
        return PASS, f"all {len(_ops.OP_NAMES)} ops", f"{dev.type} kernels present"

    return [
        run_check("extension", "fcos_core._C loaded", loaded),
        run_check("extension", f"{torch.device(device).type} kernels", kernels),
    ]


# ----------------------------------------------------------------------------- NMS
def nms_extra_arguments(op: Any = None) -> list[tuple[str, tuple[Any, ...]]]:
    """(name, values to try) for each argument of ``op`` (default fcos::nms) after (boxes,
    scores, iou_threshold): both values of a bool, 0/1 for an int or float (box conventions)."""
    schema = (op or torch.ops.fcos.nms.default)._schema
    extra = []
    for arg in schema.arguments[3:]:
        type_name = str(arg.type).lower()
        values = CONVENTION_VALUES.get(type_name)
        if values is None:  # an argument type we cannot enumerate: its default only
            values = (arg.default_value,)
        extra.append((arg.name, values))
    return extra


def convention_combinations(op: Any = None) -> Iterator[dict[str, Any]]:
    """Every combination of the schema's extra NMS arguments (one empty dict if none)."""
    extra = nms_extra_arguments(op)
    names = [name for name, _ in extra]
    for values in itertools.product(*(vals for _, vals in extra)):
        yield dict(zip(names, values))


def random_nms_set(gen: torch.Generator, index: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Set ``index``: empty (0), tiny, or up to 2000 boxes; integer grids and repeated scores give
    exact IoU ties and score ties; every fifth set has duplicated boxes."""
    n = (
        0
        if index % 50 == 0
        else int(torch.randint(1, 2000 if index % 3 else 40, (1,), generator=gen))
    )
    integer = index % 2 == 0
    xy = torch.rand(n, 2, generator=gen) * 200
    wh = torch.rand(n, 2, generator=gen) * 60 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)  # (n, 4) xyxy
    if integer:
        boxes = boxes.round()
    if index % 5 == 0 and n > 1:
        boxes[n // 2 :] = boxes[: n - n // 2].clone()
    levels = 8 if index % 4 == 0 else 100000  # few distinct scores -> many ties
    scores = torch.randint(0, levels, (n,), generator=gen).float() / levels
    return boxes, scores, NMS_THRESHOLDS[index % len(NMS_THRESHOLDS)]


def nms_rows(device: str, num_sets: int = NMS_SETS) -> list[Row]:
    """fcos::nms on ``device`` against the CPU kernel (on CPU: the reference), per convention."""
    from fcos_core.layers import _ops
    from fcos_core.layers.nms import nms_reference

    dev = torch.device(device)
    if not (_ops.HAS_EXT and _ops.has_kernel("fcos::nms", dev.type)):
        return [Row("kernels", "nms keep lists", SKIP, "", f"no fcos::nms kernel for {dev.type}")]
    rows = []
    for conv in convention_combinations():
        label = ", ".join(f"{k}={v}" for k, v in conv.items()) or "default convention"

        def compare(conv: dict[str, Any] = conv) -> tuple[str, str, str]:
            gen = torch.Generator().manual_seed(0)
            bad = []
            for i in range(num_sets):
                boxes, scores, thr = random_nms_set(gen, i)
                if dev.type == "cpu":
                    expected = nms_reference(boxes, scores, thr, *conv.values())
                else:
                    expected = torch.ops.fcos.nms(boxes, scores, thr, *conv.values())
                got = torch.ops.fcos.nms(boxes.to(dev), scores.to(dev), thr, *conv.values())
                if got.device.type != dev.type or not torch.equal(got.cpu(), expected):
                    bad.append(f"set {i} (n={boxes.shape[0]}, thr={thr})")
            oracle = "reference" if dev.type == "cpu" else "cpu kernel"
            if bad:
                return FAIL, f"{len(bad)}/{num_sets} differ", f"vs {oracle}: {'; '.join(bad[:3])}"
            return PASS, f"{num_sets}/{num_sets} identical", f"vs {oracle}, incl. ties + empty"

        rows.append(run_check("kernels", f"nms keep lists ({label})", compare))
    return rows


# ----------------------------------------------------------------------------- focal loss
def focal_rows(device: str) -> list[Row]:
    """fcos::sigmoid_focal_loss forward/backward on ``device`` against CPU (or the reference)."""
    from fcos_core.layers import _ops
    from fcos_core.layers.sigmoid_focal_loss import sigmoid_focal_loss_reference

    dev = torch.device(device)
    if not (_ops.HAS_EXT and _ops.has_kernel("fcos::sigmoid_focal_loss", dev.type)):
        return [Row("kernels", "focal loss", SKIP, "", f"no focal-loss kernel for {dev.type}")]

    def compare() -> tuple[str, str, str]:
        gen = torch.Generator().manual_seed(1)
        logits = torch.randn(4000, 80, generator=gen) * 3
        targets = torch.randint(-1, 81, (4000,), generator=gen)
        grad_out = torch.rand(4000, 80, generator=gen)

        def run(fn: Callable, on: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
            x = logits.to(on).detach().requires_grad_()  # a fresh leaf on every run
            loss = fn(x, targets.to(on), 2.0, 0.25)
            loss.backward(grad_out.to(on))
            return loss.detach().cpu(), x.grad.cpu()

        if dev.type == "cpu":
            ref = run(sigmoid_focal_loss_reference, dev)
        else:
            ref = run(torch.ops.fcos.sigmoid_focal_loss, torch.device("cpu"))
        got = run(torch.ops.fcos.sigmoid_focal_loss, dev)
        err_f = (got[0] - ref[0]).abs().max().item()
        err_b = (got[1] - ref[1]).abs().max().item()
        status = PASS if max(err_f, err_b) <= FOCAL_TOL else FAIL
        return status, f"fwd {err_f:.1e}, bwd {err_b:.1e}", f"max abs diff, tolerance {FOCAL_TOL}"

    return [run_check("kernels", "focal loss fwd/bwd (4000x80 float32)", compare)]


def opcheck_rows(device: str) -> list[Row]:
    """``torch.library.opcheck`` (schema, fake kernel, autograd registration) on ``device``."""
    from fcos_core.layers import _ops

    dev = torch.device(device)
    if not (_ops.HAS_EXT and _ops.has_kernel("fcos::nms", dev.type)):
        return [Row("kernels", "opcheck", SKIP, "", f"no kernels for {dev.type}")]
    gen = torch.Generator().manual_seed(2)
    boxes, scores, _ = random_nms_set(gen, 1)
    logits = torch.randn(64, 7, generator=gen, device="cpu").to(dev)
    targets = torch.randint(-1, 8, (64,), generator=gen).to(dev)
    cases = {
        "nms": (torch.ops.fcos.nms.default, (boxes.to(dev), scores.to(dev), 0.5)),
        "sigmoid_focal_loss": (
            torch.ops.fcos.sigmoid_focal_loss.default,
            (logits.clone().requires_grad_(), targets, 2.0, 0.25),
        ),
        "_sigmoid_focal_loss_backward": (
            torch.ops.fcos._sigmoid_focal_loss_backward.default,
            (logits, targets, torch.rand_like(logits), 2.0, 0.25),
        ),
    }
    rows = []
    for name, (op, args) in cases.items():

        def check(op: Any = op, args: tuple = args) -> tuple[str, str, str]:
            torch.library.opcheck(op, args)
            return PASS, "ok", f"on {dev.type}"

        rows.append(run_check("kernels", f"opcheck fcos::{name}", check))
    return rows


# ----------------------------------------------------------------------------- training steps
def random_targets(batch: int, height: int, width: int, num_classes: int, seed: int) -> list:
    """``batch`` BoxLists of 6 random boxes each (labels 1..num_classes-1)."""
    from fcos_core.structures.bounding_box import BoxList

    gen = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(batch):
        xy = torch.rand(6, 2, generator=gen) * torch.tensor([width * 0.7, height * 0.7])
        wh = torch.rand(6, 2, generator=gen) * torch.tensor([width * 0.3, height * 0.3]) + 8
        boxes = torch.cat([xy, xy + wh], dim=1)
        target = BoxList(boxes, (width, height))
        target.add_field("labels", torch.randint(1, num_classes, (6,), generator=gen))
        targets.append(target)
    return targets


def training_config(config_file: str, device: str, amp: str) -> Any:
    """The zoo config for a from-scratch step: no weight download, ``amp`` "float32", "float16" or
    "bfloat16" (`fcos_core.utils.precision`)."""
    from fcos_core.config import cfg as default_cfg

    cfg = default_cfg.clone()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list([
        "MODEL.DEVICE", device, "MODEL.WEIGHT", "", "AMP.ENABLED", amp != "float32",
        "AMP.DTYPE", amp,
    ])  # fmt: skip
    return cfg


def syncbn_applies(cfg: CfgNode) -> bool:
    """SyncBatchNorm is converted for the CUDA runs of the syncbn configs (it needs CUDA)."""
    return cfg.MODEL.USE_SYNCBN and torch.device(cfg.MODEL.DEVICE).type == "cuda"


def train_steps(cfg: CfgNode, size: tuple[int, int], batch: int, steps: int, ddp: bool) -> str:
    """``steps`` optimisation steps as ``fcos_core.engine.trainer`` takes them; returns the value
    column (median step time, peak memory, scale). Raises on a non-finite loss or no update."""
    from fcos_core.engine.amp import amp_dtype, autocast, build_grad_scaler
    from fcos_core.engine.launcher import _wrap_ddp
    from fcos_core.modeling.detector import build_detection_model
    from fcos_core.solver import make_optimizer
    from fcos_core.structures.image_list import to_image_list

    device = torch.device(cfg.MODEL.DEVICE)
    torch.manual_seed(0)
    model = build_detection_model(cfg).to(device)
    if ddp:  # SyncBN before DDP, as in training; at world size 1 SyncBN computes plain BN
        if syncbn_applies(cfg):
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = _wrap_ddp(model, cfg, local_rank=device.index or 0)
    model.train()
    optimizer = make_optimizer(cfg, model)
    scaler = build_grad_scaler(cfg, device.type)
    dtype = amp_dtype(cfg, device.type)
    gen = torch.Generator().manual_seed(3)
    images = to_image_list([torch.rand(3, *size, generator=gen) for _ in range(batch)], 32)
    num_classes = cfg.MODEL.FCOS.NUM_CLASSES
    targets = random_targets(batch, size[0], size[1], num_classes, seed=4)
    watched = [p for p in model.parameters() if p.requires_grad][:5]
    before = [p.detach().clone() for p in watched]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, skipped = [], 0
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        imgs = images.to(device, non_blocking=True)
        tgts = [t.to(device) for t in targets]
        with autocast(device.type, dtype):
            loss_dict = model(imgs, tgts)
        loss = sum(v.float() for v in loss_dict.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} ({loss_dict})")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scale = scaler.get_scale()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            skipped += scaler.get_scale() < scale
        else:
            loss.backward()
            optimizer.step()
        sync(device)
        times.append(time.perf_counter() - start)
    changed = any(not torch.equal(b, p.detach()) for b, p in zip(before, watched))
    if not changed:
        raise RuntimeError(f"no parameter changed in {steps} steps ({skipped} skipped by scaler)")
    timed = times[1:] or times
    mem = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    value = f"{statistics.median(timed) * 1000:.0f} ms/step"
    value += f", peak {mem:.0f} MiB" if device.type == "cuda" else ""
    value += f", scaler {scaler.get_scale():.0f} ({skipped} skipped)" if scaler is not None else ""
    return value


def init_single_process_group(device: str) -> None:
    """A world-size-1 process group (NCCL on CUDA, gloo on CPU) so DDP and SyncBN can be built."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device).index or 0)
    with socket.socket() as probe:  # a free port (a file store waits ~10 s)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


def train_rows(config_file: str, device: str, amps: tuple[str, ...], size: tuple[int, int],
               batch: int, steps: int, ddp: bool) -> list[Row]:  # fmt: skip
    """One row per AMP mode: ``steps`` training steps of ``config_file`` on ``device``."""
    name = os.path.splitext(os.path.basename(config_file))[0]
    rows = []
    if ddp:

        def group() -> tuple[str, str, str]:
            init_single_process_group(device)
            backend = torch.distributed.get_backend()
            return PASS, backend, "world size 1, for DDP + SyncBN below"

        rows.append(run_check("train step", "process group", group))
        if rows[-1].status == FAIL:
            return rows
    for amp in amps:

        def check(amp: str = amp) -> tuple[str, str, str]:
            cfg = training_config(config_file, device, amp)
            value = train_steps(cfg, size, batch, steps, ddp)
            where = "DDP world 1" + (", SyncBN" if syncbn_applies(cfg) else "") if ddp else ""
            note = f"{steps} steps b{batch} {size[0]}x{size[1]}" + (f"; {where}" if where else "")
            return PASS, value, note

        rows.append(run_check("train step", f"{name} {amp}", check))
    return rows
