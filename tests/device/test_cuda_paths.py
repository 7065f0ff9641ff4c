"""The CUDA choices of the training code, checked on a CPU: DDP arguments, pinned memory,
GradScaler only for float16, cuDNN / determinism switches, set_device before the process group,
non-blocking copies, and the environment report naming the extension's backends."""

from __future__ import annotations

import datetime
import os

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.engine.amp import build_grad_scaler
from fcos_core.layers import _ops
from fcos_core.structures.bounding_box import BoxList
from fcos_core.structures.image_list import to_image_list
from fcos_core.utils import comm
from fcos_core.utils.collect_env import collect_env_info, extension_info
from fcos_core.utils.device_setup import (
    configure_backends,
    ddp_kwargs,
    no_forward_buffer_sync,
    pin_memory_for,
)


def config(**options):
    cfg = default_cfg.clone()
    cfg.merge_from_list([item for pair in options.items() for item in pair])
    return cfg


def test_ddp_gets_the_local_gpu_on_cuda_and_no_device_on_cpu():
    assert ddp_kwargs("cuda", 3) == {"device_ids": [3], "output_device": 3}
    assert ddp_kwargs("cuda:1", 1) == {"device_ids": [1], "output_device": 1}
    assert ddp_kwargs("cpu", 0) == {"device_ids": None, "output_device": None}


def test_buffer_sync_is_off_under_the_name_the_installed_torch_has(monkeypatch):
    assert no_forward_buffer_sync() == {"forward_sync_buffers": False}  # the pinned torch

    class OldDDP:  # torch <= 2.12: only broadcast_buffers
        def __init__(self, module, device_ids=None, broadcast_buffers=True):
            pass

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", OldDDP)
    assert no_forward_buffer_sync() == {"broadcast_buffers": False}


def test_pinned_memory_only_for_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pin_memory_for("cuda") and pin_memory_for("cuda:0")
    assert not pin_memory_for("cpu")
    # MODEL.DEVICE cuda without a visible GPU runs on the CPU: nothing to pin for.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not pin_memory_for("cuda")


@pytest.mark.parametrize(
    ("amp", "dtype", "device", "scaler"),
    [
        (True, "float16", "cuda", True),
        (True, "auto", "cuda", True),  # auto is float16 on CUDA
        (True, "bfloat16", "cuda", False),
        (True, "auto", "cpu", False),  # auto is bfloat16 on CPU
        (False, "float16", "cuda", False),
    ],
)
def test_grad_scaler_only_for_float16(amp, dtype, device, scaler):
    cfg = config(**{"AMP.ENABLED": amp, "AMP.DTYPE": dtype})
    made = build_grad_scaler(cfg, device)
    assert isinstance(made, torch.amp.GradScaler) if scaler else made is None


def test_cudnn_benchmark_and_deterministic_switches(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    configure_backends(config(CUDNN_BENCHMARK=True))
    assert torch.backends.cudnn.benchmark
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda *a, **k: calls.append(k))
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    configure_backends(config(CUDNN_BENCHMARK=True, DETERMINISTIC=True))
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert calls == [{"warn_only": True}]
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert default_cfg.CUDNN_BENCHMARK is False and default_cfg.DIST_TIMEOUT_MINUTES == 10.0


def test_set_device_comes_before_the_nccl_group_with_the_config_timeout(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(comm, "is_dist_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "set_device", lambda rank: calls.append(("set_device", rank)))
    monkeypatch.setattr(
        comm.dist,
        "init_process_group",
        lambda **kw: calls.append(("init", kw["backend"], kw["timeout"])),
    )
    monkeypatch.setattr(comm, "synchronize", lambda: None)
    monkeypatch.setattr(comm, "get_rank", lambda: 1)
    comm.init_distributed("cuda", 1, timeout_minutes=3.0)
    assert calls == [("set_device", 1), ("init", "nccl", datetime.timedelta(minutes=3))]
    calls.clear()
    comm.init_distributed("cpu", 0, timeout_minutes=3.0)
    assert calls == [("init", "gloo", datetime.timedelta(minutes=3))]


def test_non_blocking_copies_keep_every_field():
    target = BoxList(torch.tensor([[0.0, 0, 4, 4]]), (8, 8))
    target.add_field("labels", torch.tensor([2]))
    moved = target.to("cpu", non_blocking=True)
    assert torch.equal(moved.bbox, target.bbox) and torch.equal(
        moved.get_field("labels"), torch.tensor([2])
    )
    images = to_image_list([torch.rand(3, 5, 7)], 8).to("cpu", non_blocking=True)
    assert images.tensors.shape == (1, 3, 8, 8)


@pytest.mark.cuda
def test_pinned_batches_copy_to_the_gpu():
    target = BoxList(torch.tensor([[0.0, 0, 4, 4]]), (8, 8))
    target.add_field("labels", torch.tensor([2]))
    pinned = target.pin_memory()
    assert pinned.bbox.is_pinned() and pinned.get_field("labels").is_pinned()
    images = to_image_list([torch.rand(3, 5, 7)], 8).pin_memory()
    assert images.tensors.is_pinned()
    on_gpu = pinned.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    assert torch.equal(on_gpu.bbox.cpu(), target.bbox)


def test_environment_report_names_the_extension_backends():
    info = extension_info()
    assert info.startswith("fcos_core._C: ")
    for op in _ops.OP_NAMES:
        assert f"{op}: kernels for " in info
    assert info in collect_env_info()
