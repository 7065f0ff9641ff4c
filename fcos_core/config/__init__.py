"""Configuration: the global default `cfg` (clone it before use)."""

from __future__ import annotations

from fcos_core.config.defaults import _C as cfg

__all__ = ["cfg"]
