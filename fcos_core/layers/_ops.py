"""Loads the compiled ``fcos_core._C`` ops and registers their autograd and fake kernels.

The C++ library defines the schemas (``csrc/ops.cpp``) and the CPU/CUDA kernels. Here, and only
after the extension has loaded, we attach autograd to ``fcos::sigmoid_focal_loss`` and fake (meta)
kernels for ``torch.compile``. When the extension cannot be loaded, or ``FCOS_DISABLE_EXT=1`` is
set, ``HAS_EXT`` is False and the wrappers in ``nms.py`` / ``sigmoid_focal_loss.py`` use their
pure-PyTorch reference functions. One warning says so; importing never fails.

Per device: an extension built without CUDA kernels (``FORCE_CUDA=0``, or no usable nvcc at build
time) still loads; :func:`use_kernel` then sends CUDA inputs to the reference (torchvision's NMS
where it is the same maths) with one warning per (op, device type). Fake tensors and meta inputs
always go to the op, so its fake kernel serves ``torch.compile`` and shape propagation.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import FakeTensor

DISABLE_ENV_VAR = "FCOS_DISABLE_EXT"
EXTENSION_MODULE = "fcos_core._C"
_FALSE_VALUES = ("", "0", "false", "no", "off")
OP_NAMES = ("fcos::nms", "fcos::sigmoid_focal_loss", "fcos::_sigmoid_focal_loss_backward")
# torch device type -> dispatch key of a backend kernel
DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS", "xpu": "XPU", "meta": "Meta"}
REFERENCE = "the pure-PyTorch reference"
BUILD_HINT = (
    "FORCE_CUDA=1 pip install --no-build-isolation -e . (needs an nvcc whose major version "
    "matches torch's CUDA {cuda}; TORCH_CUDA_ARCH_LIST selects the GPU architectures)"
)


def _load_extension() -> tuple[bool, str]:
    """Imports the extension; returns (loaded, reason it was not loaded)."""
    flag = os.environ.get(DISABLE_ENV_VAR, "")
    if flag.strip().lower() not in _FALSE_VALUES:
        return False, f"{DISABLE_ENV_VAR}={flag} is set"
    try:
        importlib.import_module(EXTENSION_MODULE)
    except (ImportError, OSError) as exc:
        return False, f"{EXTENSION_MODULE} could not be loaded: {exc}"
    if not hasattr(torch.ops.fcos, "nms"):
        return False, f"{EXTENSION_MODULE} loaded but registered no fcos::nms op"
    return True, ""


HAS_EXT, EXT_UNAVAILABLE_REASON = _load_extension()

if not HAS_EXT:
    warnings.warn(
        "fcos_core: using the pure-PyTorch reference NMS and sigmoid focal loss "
        f"({EXT_UNAVAILABLE_REASON}). Build the extension with "
        "`pip install --no-build-isolation -e .` for the fast kernels.",
        RuntimeWarning,
        stacklevel=2,
    )


def _nms_fake(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    offset: float = 0.0,
    suppress_equal: bool = False,
) -> Tensor:
    """Fake kernel: the number of kept boxes is data dependent, a new dynamic size."""
    torch._check(boxes.dim() == 2 and boxes.shape[1] == 4, lambda: "nms: boxes must be [N, 4]")
    torch._check(scores.dim() == 1, lambda: "nms: scores must be [N]")
    torch._check(boxes.shape[0] == scores.shape[0], lambda: "nms: boxes/scores length differ")
    num_kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((num_kept,), dtype=torch.long)


def _focal_fake(logits: Tensor, targets: Tensor, gamma: float, alpha: float) -> Tensor:
    torch._check(logits.dim() == 2, lambda: "sigmoid_focal_loss: logits must be [R, C]")
    torch._check(targets.dim() == 1, lambda: "sigmoid_focal_loss: targets must be [R]")
    torch._check(logits.shape[0] == targets.shape[0], lambda: "sigmoid_focal_loss: R differs")
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _focal_backward_fake(
    logits: Tensor, targets: Tensor, grad_loss: Tensor, gamma: float, alpha: float
) -> Tensor:
    torch._check(grad_loss.shape == logits.shape, lambda: "grad_loss must match logits")
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _focal_setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    logits, targets, gamma, alpha = inputs
    ctx.save_for_backward(logits, targets)
    ctx.gamma = gamma
    ctx.alpha = alpha


def _focal_backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, None, None, None]:
    logits, targets = ctx.saved_tensors
    grad_logits = None
    if ctx.needs_input_grad[0]:
        grad_logits = torch.ops.fcos._sigmoid_focal_loss_backward(
            logits, targets, grad_loss, ctx.gamma, ctx.alpha
        )
    return grad_logits, None, None, None


def _register() -> None:
    torch.library.register_fake("fcos::nms", _nms_fake)
    torch.library.register_fake("fcos::sigmoid_focal_loss", _focal_fake)
    torch.library.register_fake("fcos::_sigmoid_focal_loss_backward", _focal_backward_fake)
    torch.library.register_autograd(
        "fcos::sigmoid_focal_loss", _focal_backward, setup_context=_focal_setup_context
    )


def kernel_device_types(op_name: str) -> frozenset[str]:
    """Device types for which ``op_name`` has a registered backend kernel (empty without _C)."""
    if not HAS_EXT:
        return frozenset()
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    return frozenset(dev for dev, key in DISPATCH_KEYS.items() if has(op_name, key))


if HAS_EXT:
    _register()
# Computed once, after the fake (Meta) kernels exist: a plain set lookup at call time, which
# torch.compile traces without a graph break.
KERNEL_DEVICES: dict[str, frozenset[str]] = {op: kernel_device_types(op) for op in OP_NAMES}
_WARNED: set[tuple[str, str]] = set()


def has_kernel(op_name: str, device_type: str) -> bool:
    """True when the loaded extension has a kernel for ``op_name`` on ``device_type``."""
    return device_type in KERNEL_DEVICES.get(op_name, frozenset())


def warn_fallback(op_name: str, device_type: str, reference: str) -> None:
    """One RuntimeWarning per (op, device type): no kernel there, ``reference`` is used."""
    if (op_name, device_type) in _WARNED:
        return
    _WARNED.add((op_name, device_type))
    how = (
        "Build them with " + BUILD_HINT.format(cuda=torch.version.cuda or "(none)")
        if device_type == "cuda"
        else f"fcos_core has no {device_type} kernels"
    )
    warnings.warn(
        f"fcos_core: the compiled extension has no {device_type} kernel for {op_name}; using "
        f"{reference} on {device_type} instead (slower). {how}.",
        RuntimeWarning,
        stacklevel=3,
    )


def use_kernel(
    op_name: str, tensor: Tensor, reference: Callable[[str], str] = lambda device_type: REFERENCE
) -> bool:
    """Whether to call the compiled ``op_name`` for an input like ``tensor``.

    False without the extension (the import warning said so), or with a warning naming
    ``reference(device type)`` when the extension lacks a kernel for this device. Fake and meta
    tensors always use the op (its fake kernel), whatever device they claim.
    """
    if not HAS_EXT:
        return False
    if isinstance(tensor, FakeTensor) or tensor.device.type == "meta":
        return True
    if has_kernel(op_name, tensor.device.type):
        return True
    warn_fallback(op_name, tensor.device.type, reference(tensor.device.type))
    return False


def _torchvision_nms_devices() -> frozenset[str]:
    try:
        import torchvision  # noqa: F401 - registers torchvision::nms
    except ImportError:
        return frozenset()
    if not hasattr(torch.ops.torchvision, "nms"):
        return frozenset()
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    return frozenset(dev for dev, key in DISPATCH_KEYS.items() if has("torchvision::nms", key))


TORCHVISION_NMS_DEVICES = _torchvision_nms_devices()


def torchvision_has_nms(device_type: str) -> bool:
    """True when torchvision's compiled NMS has a kernel for ``device_type``."""
    return device_type in TORCHVISION_NMS_DEVICES


def extension_summary() -> str:
    """One line: where _C came from, its backends (CUDA with its architectures), what falls back."""
    if not HAS_EXT:
        return f"not loaded ({EXT_UNAVAILABLE_REASON}); every op uses its pure-PyTorch reference"
    module = importlib.import_module(EXTENSION_MODULE)
    backends = sorted(set().union(*KERNEL_DEVICES.values()) - {"meta"})
    names = [b.upper() for b in backends]
    if "cuda" in backends:
        archs = build_info().get("cuda_archs") or "architectures not recorded"
        names[backends.index("cuda")] = f"CUDA ({archs})"
    missing = sorted({d for d in ("cpu", "cuda") for op in OP_NAMES if not has_kernel(op, d)})
    fallback = (
        f"; {', '.join(missing).upper()} inputs fall back to the references" if missing else ""
    )
    return f"{module.__file__}: kernels for {', '.join(names) or 'no device'}{fallback}"


def build_info() -> dict[str, str]:
    """What setup.py recorded about the build (``fcos_core/_build_info.py``), or {}."""
    try:
        from fcos_core._build_info import BUILD_INFO
    except ImportError:
        return {}
    return dict(BUILD_INFO)
