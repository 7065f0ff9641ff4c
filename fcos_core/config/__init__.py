"""Configuration: the default `cfg` (clone it before use), its validation and the catalogs."""

from __future__ import annotations

from fcos_core.config.defaults import _C as cfg

__all__ = ["cfg"]
