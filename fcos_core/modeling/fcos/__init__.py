"""The FCOS head, its targets, losses, post-processing, test-time augmentation and
sliced inference."""

from __future__ import annotations

from fcos_core.modeling.fcos.head import FCOSHead
from fcos_core.modeling.fcos.locations import compute_locations, compute_locations_per_level
from fcos_core.modeling.fcos.loss import FCOSLossComputation
from fcos_core.modeling.fcos.module import FCOSModule
from fcos_core.modeling.fcos.postprocess import FCOSPostProcessor
from fcos_core.modeling.fcos.slicing import SlicedInference
from fcos_core.modeling.fcos.tta import FCOSTestTimeAugmentation

__all__ = [
    "FCOSHead",
    "FCOSLossComputation",
    "FCOSModule",
    "FCOSPostProcessor",
    "FCOSTestTimeAugmentation",
    "SlicedInference",
    "compute_locations",
    "compute_locations_per_level",
]
