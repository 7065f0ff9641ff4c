"""Models: input preprocessing, backbones (body + FPN), the FCOS head, and the detector."""

from __future__ import annotations

from fcos_core.modeling.detector import GeneralizedRCNN, build_detection_model

__all__ = ["GeneralizedRCNN", "build_detection_model"]
