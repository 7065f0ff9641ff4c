"""``FCOSPredictor``: images in, detections in original pixel coordinates out.

The package's one inference front door for users (detectron2's ``DefaultPredictor`` and mmdet's
``DetInferencer`` play the same part there)::

    from fcos_core.engine.predictor import FCOSPredictor

    predictor = FCOSPredictor.from_config_file(
        "configs/fcos/fcos_imprv_R_50_FPN_1x.yaml", weights="FCOS_imprv_R_50_FPN_1x"
    )
    for det in predictor(["street.jpg", "more_images/"]):
        print(det.source, det.boxes, det.class_names, det.scores)

Inputs: image paths, folders (their images, sorted by name), or uint8[H, W, 3] numpy arrays in
**BGR** channel order, as ``cv2.imread`` returns them. Weights: a file path, an http(s) URL, a
``catalog://`` name or a model zoo name (``FCOS_imprv_R_50_FPN_1x``). A model whose weights do not
cover every parameter (an empty MODEL.WEIGHT, ImageNet backbone weights) is refused unless
``allow_random_weights=True``. With TEST.SLICE.ENABLED each image runs as tiles (sliced inference,
for small objects in large images; ``fcos_core.modeling.fcos.slicing``).
"""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from yacs.config import CfgNode

from fcos_core.config.checks import ConfigError
from fcos_core.data.coco_classes import (
    FCOS_COCO_CLASS_THRESHOLDS,
    default_class_names,
)
from fcos_core.data.datasets.image_io import read_image
from fcos_core.data.transforms import build_transforms
from fcos_core.engine.defaults import load_config
from fcos_core.export.fast_path import prepare_fast_inference
from fcos_core.modeling.detector import build_detection_model
from fcos_core.modeling.fcos.slicing import SlicedInference
from fcos_core.structures.bounding_box import BoxList
from fcos_core.utils.checkpoint import DetectronCheckpointer
from fcos_core.utils.env import resolve_device
from fcos_core.utils.model_zoo import DownloadError
from fcos_core.utils.visualize import draw_detections, per_class_thresholds, select_detections

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
ImageInput = str | os.PathLike | np.ndarray
# How many missing parameter names an "untrained weights" error shows.
MISSING_KEYS_SHOWN = 3


class UntrainedWeightsError(ConfigError):
    """The predictor would run with randomly initialised parameters."""


class WeightsDownloadError(ConfigError):
    """Weights given by URL or model zoo name could not be downloaded."""


@dataclass
class Detections:
    """Detections of one image, best first, in the image's original pixel coordinates.

    Attributes:
        boxes: float32[K, 4] xyxy boxes.
        scores: float32[K].
        labels: int64[K] contiguous labels 1..C.
        class_names: K names, one per detection.
        image_size: (height, width) of the original image.
        source: the file the image came from ("" for arrays).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    image_size: tuple[int, int]
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``fcos detect`` writes)."""
        return {
            "file": self.source,
            "height": self.image_size[0],
            "width": self.image_size[1],
            "detections": [
                {"box": [round(float(v), 2) for v in box], "label": int(label),
                 "class_name": name, "score": round(float(score), 4)}
                for box, label, name, score in zip(
                    self.boxes, self.labels, self.class_names, self.scores
                )
            ],
        }  # fmt: skip


def resolve_weights(name: str) -> str:
    """A model zoo name (``FCOS_imprv_R_50_FPN_1x``) becomes ``catalog://FCOS/<name>``."""
    from fcos_core.config.paths_catalog import ModelCatalog

    if name in ModelCatalog.FCOS_MODELS and not os.path.exists(name):
        return f"catalog://FCOS/{name}"
    return name


def image_files(folder: str) -> list[str]:
    """The images of ``folder`` (by extension), sorted by name."""
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    return [os.path.join(folder, n) for n in names]


def expand_inputs(inputs: ImageInput | Iterable[ImageInput]) -> list[ImageInput]:
    """One item per image: folders expand to their images; a single input becomes a list."""
    if isinstance(inputs, (str, os.PathLike, np.ndarray)):
        inputs = [inputs]
    items: list[ImageInput] = []
    for item in inputs:
        if isinstance(item, np.ndarray):
            items.append(item)
        elif os.path.isdir(item):
            items.extend(image_files(os.fspath(item)))
        elif os.path.isfile(item):
            items.append(os.fspath(item))
        else:
            raise FileNotFoundError(f"no such image or folder: {item}")
    return items


def _check_array(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected a uint8[H, W, 3] BGR image, got {image.dtype}{list(image.shape)}"
        )


class FCOSPredictor:
    """Run a trained FCOS model on images.

    Args:
        cfg: the model's config. Not modified.
        thresholds: one score threshold for all classes, one per class (labels 1..C), or "coco"
            for the original FCOS demo's COCO per-class thresholds.
        class_names: names of labels 1..C (default: COCO names for 80 classes, else class_k).
        weights: path, URL, ``catalog://`` or model zoo name (default: cfg.MODEL.WEIGHT).
        device: "cpu", "cuda", "cuda:N" (default: cfg.MODEL.DEVICE, CPU when no GPU).
        batch_size: images per forward pass.
        allow_random_weights: run even when some parameters are not in the weights.
    """

    def __init__(
        self,
        cfg: CfgNode,
        thresholds: float | Sequence[float] | str = 0.5,
        class_names: Sequence[str] | None = None,
        *,
        weights: str | None = None,
        device: str | None = None,
        batch_size: int = 1,
        allow_random_weights: bool = False,
    ) -> None:
        self.cfg = cfg.clone()
        self.cfg.defrost()
        self.cfg.MODEL.DEVICE = resolve_device(device or cfg.MODEL.DEVICE)
        self.cfg.MODEL.WEIGHT = resolve_weights(
            weights if weights is not None else cfg.MODEL.WEIGHT
        )
        self.cfg.freeze()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.device = torch.device(self.cfg.MODEL.DEVICE)
        self.model = build_detection_model(self.cfg).to(self.device).eval()
        self._load_weights(allow_random_weights)
        if self.cfg.TEST.FAST_PATH:  # folded FrozenBN, channels_last, inference_mode
            self.model = prepare_fast_inference(self.model, self.cfg, inplace=True)
        self.transforms = build_transforms(self.cfg, is_train=False)
        # TEST.SLICE: tiles of each image through the same model, merged (None: whole images).
        self.slicer = SlicedInference.from_config(self.cfg) if self.cfg.TEST.SLICE.ENABLED else None
        num_classes = self.cfg.MODEL.FCOS.NUM_CLASSES - 1
        self.class_names = list(class_names) if class_names else default_class_names(num_classes)
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names for a {num_classes}-class model")
        if isinstance(thresholds, str):
            if thresholds != "coco":
                raise ValueError(
                    f"thresholds must be a number, a list or 'coco', got {thresholds!r}"
                )
            thresholds = FCOS_COCO_CLASS_THRESHOLDS
        self.thresholds = per_class_thresholds(thresholds, num_classes)

    @classmethod
    def from_config_file(
        cls, config_file: str, opts: Sequence[str] = (), **kwargs: Any
    ) -> FCOSPredictor:
        """Predictor of the model described by ``config_file`` plus ``KEY VALUE`` overrides."""
        return cls(load_config(config_file, list(opts)), **kwargs)

    def _load_weights(self, allow_random: bool) -> None:
        weights = self.cfg.MODEL.WEIGHT
        hint = (
            "pass trained weights (a .pth path, a URL or a model zoo name such as "
            "FCOS_imprv_R_50_FPN_1x), or allow_random_weights=True (--allow-random-weights)"
        )
        if not weights:
            if allow_random:
                return
            raise UntrainedWeightsError(f"no weights given (MODEL.WEIGHT is empty): {hint}")
        checkpointer = DetectronCheckpointer(self.cfg, self.model, save_to_disk=False)
        try:
            checkpointer.load(weights, use_latest=False)
        except (urllib.error.URLError, DownloadError) as e:
            reason = getattr(e, "reason", None) or str(e)
            raise WeightsDownloadError(
                f"could not download the weights {weights} ({reason}): download the file "
                "yourself and pass its path (--weights FILE)"
            ) from None
        report = checkpointer.last_load_report
        missing = list(report.missing) + list(report.mismatched) if report else []
        if missing and not allow_random:
            shown = ", ".join(missing[:MISSING_KEYS_SHOWN])
            raise UntrainedWeightsError(
                f"{weights} leaves {len(missing)} parameters of the model untrained ({shown}, "
                f"...): {hint}"
            )

    def __call__(self, inputs: ImageInput | Iterable[ImageInput]) -> list[Detections]:
        """Detections for each image of ``inputs`` (paths, folders, BGR arrays), in order."""
        return list(self.iter_predictions(inputs))

    def iter_predictions(self, inputs: ImageInput | Iterable[ImageInput]) -> Iterator[Detections]:
        """Like ``__call__``, one image at a time (batches of ``batch_size`` run together)."""
        items = expand_inputs(inputs)
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            images = [self._rgb(item) for item in batch]
            for item, boxlist in zip(batch, self.predict_batch(images)):
                yield self._to_detections(boxlist, "" if isinstance(item, np.ndarray) else item)

    @staticmethod
    def _rgb(item: ImageInput) -> np.ndarray:
        if isinstance(item, np.ndarray):
            _check_array(item)
            return cv2.cvtColor(item, cv2.COLOR_BGR2RGB)
        return read_image(os.fspath(item))

    @torch.no_grad()
    def predict_batch(self, images_rgb: Sequence[np.ndarray]) -> list[BoxList]:
        """Detections above threshold of uint8[H, W, 3] RGB images, in their own frames."""
        if self.slicer is not None:  # merged detections in each image's own pixels
            outputs = self.slicer.detect_batch(self.model, images_rgb, self.device)
        else:
            tensors = [self.transforms(image, None)[0].to(self.device) for image in images_rgb]
            outputs = self.model(tensors)
        results = []
        for image, det in zip(images_rgb, outputs):
            height, width = image.shape[:2]
            results.append(
                select_detections(det.to("cpu").resize((width, height)), self.thresholds)
            )
        return results

    def predict(self, image_rgb: np.ndarray) -> BoxList:
        """Detections above threshold in the frame of ``image_rgb`` (uint8[H, W, 3] RGB)."""
        return self.predict_batch([image_rgb])[0]

    def annotate(self, image_rgb: np.ndarray) -> np.ndarray:
        """BGR picture of ``image_rgb`` with boxes and class names, ready for ``cv2.imwrite``."""
        return self.draw(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), self.predict(image_rgb))

    def draw(self, image_bgr: np.ndarray, detections: BoxList | Detections) -> np.ndarray:
        """A copy of ``image_bgr`` with ``detections`` (of that image) drawn."""
        if isinstance(detections, Detections):
            detections = self._to_boxlist(detections)
        return draw_detections(image_bgr, detections, self.class_names)

    def _to_detections(self, boxlist: BoxList, source: str) -> Detections:
        labels = boxlist.get_field("labels").numpy().astype(np.int64)
        width, height = boxlist.size
        return Detections(
            boxes=boxlist.convert("xyxy").bbox.numpy().astype(np.float32),
            scores=boxlist.get_field("scores").numpy().astype(np.float32),
            labels=labels,
            class_names=[self.class_names[k - 1] for k in labels],
            image_size=(height, width),
            source=source,
        )

    @staticmethod
    def _to_boxlist(det: Detections) -> BoxList:
        height, width = det.image_size
        boxlist = BoxList(torch.from_numpy(det.boxes), (width, height), mode="xyxy")
        boxlist.add_field("scores", torch.from_numpy(det.scores))
        boxlist.add_field("labels", torch.from_numpy(det.labels))
        return boxlist
