"""Environment report logged at the start of training and testing.

    python -m fcos_core.utils.collect_env

torch's summary, Pillow, and our extension: where it was loaded from, which backends its kernels
cover (CUDA with the architectures it was compiled for), which inputs fall back to the
reference ops, and what the last build decided (fcos_core/_build_info.py, written by setup.py).
"""

from __future__ import annotations

import PIL
import torch
from torch.utils.collect_env import get_pretty_env_info


def extension_info() -> str:
    """Lines about fcos_core._C (see the module docstring)."""
    from fcos_core.layers import _ops

    lines = [f"fcos_core._C: {_ops.extension_summary()}"]
    for op in _ops.OP_NAMES:
        devices = sorted(_ops.KERNEL_DEVICES.get(op, frozenset()) - {"meta"})
        lines.append(f"  {op}: kernels for {', '.join(devices) or 'none'}")
    if torch.cuda.is_available() and not _ops.has_kernel("fcos::nms", "cuda"):
        lines.append("  a GPU is visible but the extension has no CUDA kernels: CUDA inputs use "
                     "torchvision's NMS and the pure-PyTorch focal loss")  # fmt: skip
    info = _ops.build_info()
    if info:
        built = ", ".join(f"{k}={v}" for k, v in info.items() if k != "message")
        lines.append(f"  last build: {built}")
        if info.get("message"):
            lines.append(f"  build message: {info['message']}")
    return "\n".join(lines)


def collect_env_info() -> str:
    """torch's environment summary, the Pillow version and :func:`extension_info`."""
    return f"{get_pretty_env_info()}\n        Pillow ({PIL.__version__})\n{extension_info()}"


if __name__ == "__main__":
    print(collect_env_info())
