"""The model registries of the original ``fcos_core.modeling.registry`` (public API).

``BACKBONES`` maps MODEL.BACKBONE.CONV_BODY to a builder ``fn(cfg) -> nn.Module``; the built-in
ResNet/MobileNetV2 FPN backbones register themselves in ``modeling/backbone/backbone.py`` and
:func:`~fcos_core.modeling.backbone.build_backbone` looks every name up here, so a user module can
add one (``@registry.BACKBONES.register("MY-FPN")``; load it with the tools' ``--register-file``).
A backbone builder returns a module that maps Tensor[N, 3, H, W] to the five feature maps P3-P7
(strides 8-128) and carries ``out_channels`` (their channel count).

The other registries are declared with the original's names so code importing them keeps working;
FCOS builds no RPN or ROI heads, so nothing here looks them up.
"""

from __future__ import annotations

from fcos_core.utils.registry import Registry

BACKBONES = Registry()
RPN_HEADS = Registry()
ROI_BOX_FEATURE_EXTRACTORS = Registry()
ROI_BOX_PREDICTOR = Registry()
ROI_KEYPOINT_FEATURE_EXTRACTORS = Registry()
ROI_KEYPOINT_PREDICTOR = Registry()
ROI_MASK_FEATURE_EXTRACTORS = Registry()
ROI_MASK_PREDICTOR = Registry()
