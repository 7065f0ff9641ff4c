"""ONNX export (tools/export_onnx.py): onnxruntime reproduces the PyTorch model.

A small ResNet-18 FCOS (narrow widths, 5 classes) with random weights is saved as a checkpoint,
exported with the tool as the "head" graph and as the complete "detector" graph, and both graphs
are run in onnxruntime at two input sizes (one not a multiple of 32).
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.data.transforms import Compose, Normalize, ToTensor
from fcos_core.export.onnx_export import (
    DEFORM_CONV_OPSET,
    export_onnx,
    head_output_names,
)
from fcos_core.layers.dcn import ModulatedDeformConv
from fcos_core.modeling.detector import build_detection_model
from fcos_core.structures.image_list import to_image_list

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "export_onnx.py")
TINY_R18 = [
    "MODEL.DEVICE", "cpu",
    "MODEL.BACKBONE.CONV_BODY", "R-18-FPN-RETINANET",
    "MODEL.RESNETS.TRANS_FUNC", "BasicBlockWithFixedBatchNorm",
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 16,
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", 64,
    "MODEL.RETINANET.USE_C5", False,
    "MODEL.FCOS.NUM_CLASSES", 6,
    "MODEL.FCOS.NUM_CONVS", 2,
    "MODEL.FCOS.NORM_REG_TARGETS", True,
    "MODEL.FCOS.CENTERNESS_ON_REG", True,
    "DATALOADER.SIZE_DIVISIBILITY", 32,
]  # fmt: skip
HEAD_SIZES = [(2, 128, 192), (1, 160, 96)]  # (N, H, W), padded network inputs
IMAGE_SIZES = [(128, 192), (200, 150)]  # (H, W) detector inputs; 200 x 150 needs padding


def _load_tool():
    spec = importlib.util.spec_from_file_location("export_onnx", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(config, model with the checkpoint's weights, {"detector": path, "head": path})."""
    folder = tmp_path_factory.mktemp("onnx")
    cfg = default_cfg.clone()
    cfg.merge_from_list(TINY_R18)
    torch.manual_seed(0)
    model = build_detection_model(cfg).eval()
    with torch.no_grad():  # enough candidates to exercise NMS and the 100-detection cap
        model.rpn.head.cls_logits.bias.fill_(-2.0)
        model.rpn.head.bbox_pred.bias.fill_(2.0)
    weights = folder / "tiny.pth"
    torch.save({"model": model.state_dict()}, weights)
    config_file = folder / "tiny.yaml"
    config_file.write_text(cfg.dump())
    tool = _load_tool()
    paths = {}
    for mode in ("detector", "head"):
        paths[mode] = str(folder / f"{mode}.onnx")
        tool.main(
            ["--config-file", str(config_file), "--output", paths[mode], "--mode", mode,
             "--sample-size", "96", "128", "MODEL.WEIGHT", str(weights)]
        )  # fmt: skip
    return cfg, model, paths


def _check_head_graph(cfg, model, path, size):
    """onnxruntime's per-level outputs of the "head" graph == PyTorch's, within 1e-4."""
    generator = torch.Generator().manual_seed(sum(size))
    images = torch.randn((size[0], 3, *size[1:]), generator=generator)
    session = ort.InferenceSession(path)
    onnx_outputs = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        logits, bbox_reg, centerness = model.rpn.head(model.backbone(images))
    strides = cfg.MODEL.FCOS.FPN_STRIDES
    # Regression is compared in units of the stride (the head multiplies by it, a power of two).
    expected = [*logits, *(r / s for r, s in zip(bbox_reg, strides)), *centerness]
    onnx_outputs[len(strides) : 2 * len(strides)] = [
        r / s for r, s in zip(onnx_outputs[len(strides) : 2 * len(strides)], strides)
    ]
    names = [o.name for o in session.get_outputs()]
    assert names == head_output_names(strides)
    for name, got, want in zip(names, onnx_outputs, expected):
        assert got.shape == tuple(want.shape), name
        assert np.abs(got - want.numpy()).max() <= 1e-4, name


@pytest.mark.parametrize("size", HEAD_SIZES)
def test_head_graph_matches_pytorch(setup, size):
    cfg, model, paths = setup
    _check_head_graph(cfg, model, paths["head"], size)


def test_deformable_head_graph_matches_pytorch(tmp_path):
    """DCNv2 in layer3/layer4 and in the towers become ONNX DeformConv (opset 19)."""
    cfg = default_cfg.clone()
    cfg.merge_from_list(
        TINY_R18
        + ["MODEL.RESNETS.STAGE_WITH_DCN", (False, False, True, True),
           "MODEL.RESNETS.WITH_MODULATED_DCN", True, "MODEL.FCOS.USE_DCN_IN_TOWER", True]
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_detection_model(cfg).eval()
    deformable = [m for m in model.modules() if isinstance(m, ModulatedDeformConv)]
    assert len(deformable) == 6  # 2 + 2 blocks, the last conv of each tower
    with torch.no_grad():  # non-zero offsets and masks, so the sampling really deforms
        for m in deformable:
            m.offset.weight.normal_(0.0, 0.01)
            m.offset.bias.normal_(0.0, 0.5)
    path = export_onnx(model, cfg, tmp_path / "dcn.onnx", mode="head", sample_size=(96, 128))
    assert onnx.load(path).opset_import[0].version == DEFORM_CONV_OPSET
    _check_head_graph(cfg, model, path, HEAD_SIZES[1])
    with pytest.raises(ValueError, match="opset >= 19"):
        export_onnx(model, cfg, tmp_path / "old.onnx", mode="head", opset=17)


def _pytorch_detections(cfg, model, image):
    """Reference: the original pipeline's float normalisation in the worker (ToTensor,
    Normalize), then the model on that normalised batch (zero padding in to_image_list)."""
    hwc = image[0].permute(1, 2, 0).numpy()  # uint8 (H, W, 3) RGB, as the datasets load it
    normalized = Compose([ToTensor(), Normalize.from_config(cfg)])(hwc, None)[0]
    with torch.no_grad():
        (det,) = model(to_image_list([normalized], cfg.DATALOADER.SIZE_DIVISIBILITY))
    order = torch.argsort(det.get_field("scores"), descending=True)
    return det.bbox[order], det.get_field("scores")[order], det.get_field("labels")[order]


@pytest.mark.parametrize("size", IMAGE_SIZES)
def test_detector_graph_matches_pytorch(setup, size):
    cfg, model, paths = setup
    generator = torch.Generator().manual_seed(sum(size))
    image = (torch.rand((1, 3, *size), generator=generator) * 255.0).round().to(torch.uint8)
    session = ort.InferenceSession(paths["detector"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    boxes, scores, labels = session.run(None, {"image": image.numpy()})
    want_boxes, want_scores, want_labels = _pytorch_detections(cfg, model, image)
    assert len(want_scores) > 0
    assert labels.dtype == np.int64 and boxes.shape == (len(scores), 4)
    assert len(scores) == len(want_scores)
    assert np.all(np.diff(scores) <= 0), "scores come sorted"
    np.testing.assert_array_equal(labels, want_labels.numpy())
    np.testing.assert_allclose(scores, want_scores.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(boxes, want_boxes.numpy(), atol=1e-3, rtol=0)
    height, width = size
    assert boxes[:, [0, 2]].max() <= width and boxes[:, [1, 3]].max() <= height


def test_detector_graph_caps_detections(setup):
    cfg, _, paths = setup
    generator = torch.Generator().manual_seed(5)
    image = torch.randint(0, 256, (1, 3, *IMAGE_SIZES[0]), generator=generator, dtype=torch.uint8)
    (_, scores, _) = ort.InferenceSession(paths["detector"]).run(None, {"image": image.numpy()})
    assert len(scores) == cfg.TEST.DETECTIONS_PER_IMG


def test_detector_graph_with_no_detection(setup, tmp_path):
    """A threshold nothing passes gives empty outputs, not an error (and traces fine)."""
    cfg, model, _ = setup
    strict = cfg.clone()
    strict.MODEL.FCOS.INFERENCE_TH = 1.0
    path = export_onnx(model, strict, tmp_path / "empty.onnx", sample_size=(64, 64))
    image = np.random.default_rng(0).integers(0, 256, (1, 3, 100, 130), dtype=np.uint8)
    boxes, scores, labels = ort.InferenceSession(path).run(None, {"image": image})
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)


def test_metadata_and_bad_mode(setup):
    cfg, model, paths = setup
    meta = {p.key: p.value for p in onnx.load(paths["detector"]).metadata_props}
    assert meta["fcos_mode"] == "detector"
    assert json.loads(meta["class_names"])[0] == "__background__"
    assert len(json.loads(meta["class_names"])) == cfg.MODEL.FCOS.NUM_CLASSES
    assert int(meta["min_size_test"]) == cfg.INPUT.MIN_SIZE_TEST
    with pytest.raises(ValueError, match="mode must be one of"):
        export_onnx(model, cfg, "unused.onnx", mode="backbone")
