"""``im_detect_bbox_aug(model, images, device)``: the original FCOS's test-time augmentation entry.

maskrcnn-benchmark / FCOS user code imports it from ``fcos_core.engine.bbox_aug`` and calls it
with the original images of a batch (PIL images there; uint8[H, W, 3] RGB arrays also work
here). As there, the settings come from the global ``fcos_core.config.cfg`` (TEST.BBOX_AUG.*,
INPUT.*, MODEL.FCOS.NMS_TH, TEST.DETECTIONS_PER_IMG) unless a config is passed, and the model
must have been built with TEST.BBOX_AUG.ENABLED so that its post-processor leaves the NMS to the
merge. The passes and the merge are `FCOSTestTimeAugmentation` (``modeling/fcos/tta.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from fcos_core.config import cfg as global_cfg
from fcos_core.modeling.fcos.tta import FCOSTestTimeAugmentation
from fcos_core.structures.bounding_box import BoxList


def _rgb_array(image: Any) -> np.ndarray:
    """uint8[H, W, 3] RGB of a PIL image (converted) or of an array (as it is)."""
    if hasattr(image, "convert"):  # PIL.Image.Image, without importing PIL here
        return np.asarray(image.convert("RGB"))
    return image


def im_detect_bbox_aug(
    model: nn.Module,
    images: Sequence[Any],
    device: torch.device | str,
    cfg: CfgNode | None = None,
) -> list[BoxList]:
    """Detections of ``images`` merged over the TEST.BBOX_AUG passes, one BoxList per image,
    in the frame of the plain test transform (as the original).

    Args:
        model: detector in eval mode, built with TEST.BBOX_AUG.ENABLED.
        images: original images, PIL or uint8[H, W, 3] RGB arrays.
        device: where the model runs.
        cfg: the settings; the global ``fcos_core.config.cfg`` when None (the original's way).
    """
    tta = FCOSTestTimeAugmentation.from_config(global_cfg if cfg is None else cfg)
    return tta(model, [_rgb_array(image) for image in images], torch.device(device))
