"""Detection drawing, per-class thresholds and the loss-curve plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcos_core.structures.bounding_box import BoxList
from fcos_core.utils.visualize import (
    draw_detections,
    per_class_thresholds,
    plot_loss_curve,
    select_detections,
)


def _dets() -> BoxList:
    d = BoxList(torch.tensor([[2.0, 2, 20, 20], [30, 5, 60, 40], [10, 30, 50, 60]]), (64, 64))
    d.add_field("scores", torch.tensor([0.3, 0.9, 0.6]))
    d.add_field("labels", torch.tensor([1, 2, 1]))
    return d


def test_per_class_and_global_thresholds():
    kept = select_detections(_dets(), per_class_thresholds([0.5, 0.95], 2))
    assert kept.get_field("scores").tolist() == pytest.approx([0.6])
    kept = select_detections(_dets(), per_class_thresholds(0.25, 2))
    assert kept.get_field("scores").tolist() == pytest.approx([0.9, 0.6, 0.3])  # best first
    with pytest.raises(ValueError, match="one threshold per class"):
        per_class_thresholds([0.1], 2)


def test_draw_detections_marks_boxes_only():
    image = np.zeros((64, 64, 3), np.uint8)
    drawn = draw_detections(image, _dets(), ["square", "disc"])
    assert drawn.shape == image.shape and image.sum() == 0  # input untouched
    assert drawn[2, 10].any() and drawn[40, 60].any()  # box edges coloured
    assert not drawn[63, 0].any()


def test_plot_loss_curve(tmp_path):
    records = [
        {"iteration": i, "loss": 2.0 / i, "loss_cls": 1.0 / i, "lr": 0.01} for i in range(1, 6)
    ]
    records.append({"iteration": 5, "val/AP": 0.1})  # validation lines are skipped
    plot_loss_curve(records, str(tmp_path / "loss.png"))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
