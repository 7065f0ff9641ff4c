"""``FCOSPredictor``: one image in (RGB array), detections or an annotated picture out."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from yacs.config import CfgNode

from fcos_core.data.coco_classes import COCO_CLASS_NAMES, NUM_COCO_CLASSES
from fcos_core.data.transforms import build_transforms
from fcos_core.modeling.detector import build_detection_model
from fcos_core.structures.bounding_box import BoxList
from fcos_core.utils.checkpoint import DetectronCheckpointer
from fcos_core.utils.env import resolve_device
from fcos_core.utils.fast_path import prepare_fast_inference
from fcos_core.utils.visualize import draw_detections, per_class_thresholds, select_detections


def default_class_names(num_classes: int) -> list[str]:
    """COCO names for an 80-class model, else ``class_1 .. class_C``."""
    if num_classes == NUM_COCO_CLASSES:
        return list(COCO_CLASS_NAMES[1:])
    return [f"class_{k}" for k in range(1, num_classes + 1)]


class FCOSPredictor:
    """Run a trained FCOS model on single images.

    Args:
        cfg: config of the model; its MODEL.WEIGHT is loaded (path, URL or catalog:// name).
        thresholds: one score threshold for every class, or one per class (labels 1..C).
        class_names: names of labels 1..C (default: COCO names or class_k).
    """

    def __init__(self, cfg: CfgNode, thresholds: float | Sequence[float] = 0.5,
                 class_names: Sequence[str] | None = None) -> None:  # fmt: skip
        self.cfg = cfg.clone()
        self.device = torch.device(resolve_device(cfg.MODEL.DEVICE))
        self.model = build_detection_model(self.cfg).to(self.device).eval()
        DetectronCheckpointer(self.cfg, self.model, save_to_disk=False).load(
            cfg.MODEL.WEIGHT, use_latest=False
        )
        if cfg.TEST.FAST_PATH:  # folded FrozenBN, channels_last, inference_mode
            self.model = prepare_fast_inference(self.model, cfg, inplace=True)
        self.transforms = build_transforms(self.cfg, is_train=False)
        num_classes = cfg.MODEL.FCOS.NUM_CLASSES - 1
        self.class_names = list(class_names) if class_names else default_class_names(num_classes)
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names for a {num_classes}-class model")
        self.thresholds = per_class_thresholds(thresholds, num_classes)

    @torch.no_grad()
    def predict(self, image_rgb: np.ndarray) -> BoxList:
        """Detections above threshold in the frame of ``image_rgb`` (uint8[H, W, 3]), best first."""
        height, width = image_rgb.shape[:2]
        tensor, _ = self.transforms(image_rgb, None)
        detections = self.model([tensor.to(self.device)])[0].to("cpu")
        return select_detections(detections.resize((width, height)), self.thresholds)

    def annotate(self, image_rgb: np.ndarray) -> np.ndarray:
        """BGR picture of ``image_rgb`` with boxes and class names, ready for ``cv2.imwrite``."""
        detections = self.predict(image_rgb)
        return draw_detections(
            cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), detections, self.class_names
        )
