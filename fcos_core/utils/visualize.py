"""Drawing detections on images and plotting training curves (headless: files only)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from fcos_core.structures.bounding_box import BoxList

BOX_THICKNESS = 2
FONT_SCALE = 0.45
LOSS_KEYS = ("loss", "loss_cls", "loss_reg", "loss_centerness")


def class_color(label: int) -> tuple[int, int, int]:
    """A distinct, stable BGR colour for label 1..C (golden-ratio hue steps)."""
    hue = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def per_class_thresholds(thresholds: float | Sequence[float], num_classes: int) -> torch.Tensor:
    """One score threshold per label 1..C as Tensor[C] (a single float applies to all)."""
    if isinstance(thresholds, (int, float)):
        return torch.full((num_classes,), float(thresholds))
    values = torch.as_tensor([float(t) for t in thresholds])
    if values.numel() != num_classes:
        raise ValueError(f"need one threshold per class ({num_classes}), got {values.numel()}")
    return values


def select_detections(detections: BoxList, thresholds: torch.Tensor) -> BoxList:
    """Keep detections whose score reaches their class's threshold, best first.

    Args:
        detections: BoxList with "scores" and "labels" (1..C).
        thresholds: Tensor[C], threshold of label k at index k - 1.
    """
    scores, labels = detections.get_field("scores"), detections.get_field("labels")
    keep = scores >= thresholds[labels - 1]
    kept = detections[keep]
    return kept[kept.get_field("scores").argsort(descending=True)]


def draw_detections(
    image_bgr: np.ndarray, detections: BoxList, class_names: Sequence[str]
) -> np.ndarray:
    """Boxes and "name score" captions drawn on a copy of ``image_bgr``.

    Args:
        image_bgr: uint8[H, W, 3] BGR image.
        detections: BoxList in the frame of ``image_bgr`` with "scores" and "labels" (1..C).
        class_names: names of labels 1..C.
    """
    out = image_bgr.copy()
    boxes = detections.convert("xyxy").bbox.round().int().tolist()
    for box, score, label in zip(
        boxes, detections.get_field("scores").tolist(), detections.get_field("labels").tolist()
    ):
        color = class_color(int(label))
        x1, y1, x2, y2 = box
        cv2.rectangle(out, (x1, y1), (x2, y2), color, BOX_THICKNESS)
        caption = f"{class_names[int(label) - 1]} {score:.2f}"
        (tw, th), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, 1)
        top = max(y1 - th - baseline, 0)
        left = max(min(x1, out.shape[1] - tw), 0)  # keep the caption inside the image
        cv2.rectangle(out, (left, top), (left + tw, top + th + baseline), color, -1)
        cv2.putText(
            out,
            caption,
            (left, top + th),
            cv2.FONT_HERSHEY_SIMPLEX,
            FONT_SCALE,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return out


def plot_loss_curve(records: list[dict], out_png: str) -> None:
    """Plot the losses (and the learning rate) of ``metrics.json`` records into ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in records if "loss" in r]  # skip validation-only lines
    iters = [r["iteration"] for r in records]
    fig, (ax_loss, ax_lr) = plt.subplots(
        2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for key in LOSS_KEYS:
        values = [r.get(key) for r in records]
        if any(v is not None for v in values):
            ax_loss.plot(iters, values, label=key, linewidth=1.5 if key == "loss" else 1.0)
    ax_loss.set_ylabel("loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    ax_lr.plot(iters, [r.get("lr") for r in records], color="gray")
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("iteration")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
