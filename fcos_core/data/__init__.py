"""Data: datasets, transforms, samplers and `make_data_loader`."""

from __future__ import annotations

from fcos_core.data.build import build_dataset, make_data_loader

__all__ = ["build_dataset", "make_data_loader"]
