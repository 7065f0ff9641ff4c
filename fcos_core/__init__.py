"""fcos: FCOS (Fully Convolutional One-Stage object detection) for current PyTorch."""

# Loads the compiled ops, so torch.ops.fcos.* exist after `import fcos_core` (or warns once and
# falls back to the pure-PyTorch references).
from fcos_core.layers import _ops as _ops

__version__ = "0.1.0"
