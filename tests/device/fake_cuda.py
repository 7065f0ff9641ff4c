"""Run a zoo model on fake CUDA tensors on a CPU-only machine, recording host synchronisations.

``FakeTensorMode`` gives tensors a device and a shape but no data, so:
- a CPU tensor created inside forward / targets / loss / post-processing meets the fake CUDA
  tensors and raises ``FakeTensorDeviceMismatchError``, as the real GPU run would fail;
- a data-dependent size (``nonzero``, boolean indexing, NMS) becomes an unbacked symbol, and every
  Python decision on one (``if n > k``, ``int(t)``, ``.item()``) is a host synchronisation on a
  GPU. :class:`SyncRecordingShapeEnv` answers such a question with a hint (``HINT`` elements), so
  the run goes on, and records where it was asked (file:line in fcos_core).

Backward does not run (the autograd engine wants a real CUDA context); train means forward + loss.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import ShapeEnv

from fcos_core.config import cfg as default_cfg
from fcos_core.modeling.detector import build_detection_model
from fcos_core.structures.bounding_box import BoxList
from fcos_core.structures.image_list import to_image_list

HINT = 5  # assumed value of every data-dependent size
PACKAGE_MARKER = "/fcos_core/"
TORCH_DIR = os.path.dirname(torch.__file__)


class SyncRecordingShapeEnv(ShapeEnv):
    """A ShapeEnv whose data-dependent sizes have a hint; each guard on one is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.syncs: list[tuple[str, str]] = []  # (expression, "path/in/fcos_core.py:line")

    def create_unbacked_symint(self, *args: Any, **kwargs: Any) -> torch.SymInt:
        symbol = super().create_unbacked_symint(*args, **kwargs)
        self.set_real_tensor_prop_unbacked_vals(symbol.node.expr, HINT)
        return symbol

    def _log_real_tensor_propagation(self, orig_expr: Any, result: Any) -> None:
        """Called for each guard answered from a hint: record the innermost caller outside
        torch (the line that asked), as a path inside fcos_core when it is there."""
        frames = [
            f
            for f in traceback.extract_stack()
            if TORCH_DIR not in f.filename and os.path.basename(f.filename) != "fake_cuda.py"
        ]
        where = "?"
        if frames:
            name = frames[-1].filename
            name = name.split(PACKAGE_MARKER)[-1] if PACKAGE_MARKER in name else name
            where = f"{name}:{frames[-1].lineno}"
        self.syncs.append((str(orig_expr), where))

    def sync_files(self) -> set[str]:
        return {where.rsplit(":", 1)[0] for _, where in self.syncs}


def zoo_config(config_file: str, device: str) -> Any:
    cfg = default_cfg.clone()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(["MODEL.DEVICE", device, "MODEL.WEIGHT", "", "MODEL.CHANNELS_LAST", False])
    return cfg


def fake_batch(
    device: str, num_classes: int, dtype: torch.dtype = torch.float32
) -> tuple[Any, list[BoxList]]:
    """Two small images of different sizes (padded to 32) and two boxes each: normalised floats
    (``dtype`` floating) or uint8 RGB 0..255 (``torch.uint8``, the data pipeline's batches)."""

    def image(height: int, width: int) -> torch.Tensor:
        if dtype == torch.uint8:
            return torch.randint(0, 256, (3, height, width), dtype=dtype, device=device)
        return torch.rand(3, height, width, dtype=dtype, device=device)

    images = to_image_list([image(64, 96), image(70, 80)], 32)
    targets = []
    for size in ((96, 64), (80, 70)):
        target = BoxList(torch.tensor([[4.0, 4, 40, 30], [10, 10, 50, 60]], device=device), size)
        labels = torch.tensor([1, num_classes - 1], device=device)
        target.add_field("labels", labels)
        targets.append(target)
    return images, targets


class FakeCudaRun:
    """One zoo model built and run on fake ``device`` tensors."""

    def __init__(self, config_file: str, device: str = "cuda") -> None:
        self.device = device
        self.cfg = zoo_config(config_file, device)
        self.shape_env = SyncRecordingShapeEnv()
        self.mode = FakeTensorMode(shape_env=self.shape_env)
        with self.mode, torch.device(device):
            self.model = build_detection_model(self.cfg)

    def train_losses(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """Forward with targets (target assignment + loss); syncs start from zero."""
        self.shape_env.syncs.clear()
        with self.mode:
            images, targets = fake_batch(self.device, self.cfg.MODEL.FCOS.NUM_CLASSES, dtype)
            self.model.train()
            return self.model(images, targets)

    def detections(self, dtype: torch.dtype = torch.float32) -> list[BoxList]:
        """Inference forward with post-processing; syncs start from zero."""
        self.shape_env.syncs.clear()
        with self.mode, torch.no_grad():
            images, _ = fake_batch(self.device, self.cfg.MODEL.FCOS.NUM_CLASSES, dtype)
            self.model.eval()
            return self.model(images)
