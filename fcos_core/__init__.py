"""fcos: FCOS (Fully Convolutional One-Stage object detection) for current PyTorch."""

__version__ = "0.1.0"
