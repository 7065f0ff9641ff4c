"""A model with the stride-4 level P2 exports to ONNX (head and detector graphs) and runs through
the inference fast path with the detections of the plain model."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.data.transforms import Compose, Normalize, ToTensor
from fcos_core.export.fast_path import prepare_fast_inference
from fcos_core.export.onnx_export import export_onnx, head_output_names
from fcos_core.modeling.detector import build_detection_model
from fcos_core.structures.image_list import to_image_list
from tests.export.test_onnx_export import TINY_R18

P2_P7 = [4, 8, 16, 32, 64, 128]
# the ONNX tests' tiny R-18 with the stride-4 level
TINY_P2 = [
    *TINY_R18,
    "MODEL.FCOS.FPN_STRIDES", P2_P7,
    "MODEL.FCOS.SIZES_OF_INTEREST", [32, 64, 128, 256, 512],
]  # fmt: skip
SIZE = (96, 128)  # (H, W)


@pytest.fixture(scope="module")
def p2_model():
    cfg = default_cfg.clone()
    cfg.merge_from_list(TINY_P2)
    torch.manual_seed(0)
    model = build_detection_model(cfg).eval()
    with torch.no_grad():  # enough candidates on every level
        model.rpn.head.cls_logits.bias.fill_(-2.0)
        model.rpn.head.bbox_pred.bias.fill_(1.0)
    return cfg, model


def test_head_graph_has_a_p2_output_equal_to_pytorch(p2_model, tmp_path):
    cfg, model = p2_model
    path = export_onnx(model, cfg, tmp_path / "head.onnx", mode="head", sample_size=SIZE)
    session = ort.InferenceSession(path)
    names = [o.name for o in session.get_outputs()]
    assert names == head_output_names(P2_P7) and names[0].endswith("p2")
    images = torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    got = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        logits, box_regression, centerness = model.rpn.head(model.backbone(images))
    assert got[0].shape == (1, 5, SIZE[0] // 4, SIZE[1] // 4)
    for name, ours, want in zip(names, got, [*logits, *box_regression, *centerness]):
        scale = float(np.abs(want.numpy()).max()) + 1.0
        assert np.abs(ours - want.numpy()).max() <= 1e-4 * scale, name


def test_detector_graph_matches_pytorch_with_p2(p2_model, tmp_path):
    cfg, model = p2_model
    path = export_onnx(model, cfg, tmp_path / "detector.onnx", sample_size=SIZE)
    generator = torch.Generator().manual_seed(2)
    image = (torch.rand((1, 3, *SIZE), generator=generator) * 255.0).round().to(torch.uint8)
    boxes, scores, labels = ort.InferenceSession(path).run(None, {"image": image.numpy()})
    # reference: the original pipeline's normalisation in the worker, then the model
    hwc = image[0].permute(1, 2, 0).numpy()
    normalized = Compose([ToTensor(), Normalize.from_config(cfg)])(hwc, None)[0]
    with torch.no_grad():
        (want,) = model(to_image_list([normalized], cfg.DATALOADER.SIZE_DIVISIBILITY))
    order = torch.argsort(want.get_field("scores"), descending=True)
    assert len(scores) == len(want) > 0
    np.testing.assert_array_equal(labels, want.get_field("labels")[order].numpy())
    np.testing.assert_allclose(scores, want.get_field("scores")[order].numpy(), atol=1e-5)
    np.testing.assert_allclose(boxes, want.bbox[order].numpy(), atol=1e-3)


def test_fast_path_gives_the_same_detections_with_p2(p2_model):
    _, model = p2_model
    g = torch.Generator().manual_seed(3)
    images = to_image_list([torch.randn(3, 64, 96, generator=g), torch.randn(3, 96, 64)], 32)
    fast = prepare_fast_inference(model, autocast="float32")
    with torch.no_grad():
        ours, theirs = model(images), fast(images)
    assert sum(len(d) for d in ours) > 0
    for a, b in zip(ours, theirs, strict=True):
        assert len(a) == len(b)
        torch.testing.assert_close(b.bbox, a.bbox, rtol=1e-4, atol=1e-3)
        assert torch.equal(b.get_field("labels"), a.get_field("labels"))
