"""inference(): ground truth returned by a stand-in model scores AP 1.0 end to end."""

from __future__ import annotations

import json
import logging
from collections import deque

import pytest
import torch
from torch import nn

from fcos_core.data.build import make_data_loader
from fcos_core.engine.inference import inference, load_predictions


class _GroundTruthModel(nn.Module):
    """Returns, batch after batch, the targets the test loader yields (score 1)."""

    def __init__(self, loader) -> None:
        super().__init__()
        self.queue = deque(targets for _, targets, _ in loader)

    def forward(self, images, targets=None):
        outputs = []
        for t in self.queue.popleft():
            det = t.copy_with_fields(["labels"])
            det.add_field("scores", torch.ones(len(t)))
            outputs.append(det)
        return outputs


def test_inference_with_ground_truth_gives_ap_one(tiny_cfg, tmp_path, caplog):
    cfg = tiny_cfg()
    loader = make_data_loader(cfg, is_train=False)[0]
    model = _GroundTruthModel(loader)
    with caplog.at_level(logging.INFO, logger="fcos_core"):
        results, coco_results = inference(
            model, loader, "tiny_shapes_val", device="cpu", output_folder=str(tmp_path)
        )
    assert results.results["bbox"]["AP"] == pytest.approx(1.0)
    assert (
        "Total run time: " in caplog.text and "(" in caplog.text and "on 1 devices)" in caplog.text
    )
    assert "Model inference time: " in caplog.text
    assert "Per-category bbox AP" in caplog.text
    predictions = load_predictions(str(tmp_path / "predictions.pth"))
    assert len(predictions) == len(loader.dataset) == 8
    assert len(json.loads((tmp_path / "bbox.json").read_text())) == len(coco_results) > 0
