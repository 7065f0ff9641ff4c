"""Sliced inference (TEST.SLICE) end to end: run_test / inference, the predictor, fcos detect and
the demo.

A tiny FCOS with random weights checks the wiring (one tile = plain inference; a tile's boxes
are the model's boxes on that crop, shifted); the deterministic ``BlobDetector`` shows through
the real COCO evaluation that slicing finds small objects the whole-image pass cannot.
"""

from __future__ import annotations

import argparse
import json
import os

import cv2
import numpy as np
import pytest
import torch

from fcos_core.data.build import make_data_loader
from fcos_core.data.transforms import build_transforms
from fcos_core.engine.commands import detect
from fcos_core.engine.inference import build_test_time_augmentation, inference
from fcos_core.engine.predictor import FCOSPredictor
from fcos_core.modeling.detector import build_detection_model
from fcos_core.modeling.fcos.slicing import SlicedInference, tile_windows
from tests.engine.conftest import TINY_REGISTER, TINY_YAML
from tests.engine.test_tta import predictions_of, random_model
from tests.modeling.blob_detector import RED, WHITE, BlobDetector, draw, scatter_rects

SLICE_ON = ("TEST.SLICE.ENABLED", "True")


def test_one_tile_as_large_as_the_image_gives_the_plain_detections(tiny_cfg, tmp_path):
    plain_cfg = tiny_cfg(output_dir=str(tmp_path / "plain"))
    sliced_cfg = tiny_cfg(*SLICE_ON, "TEST.SLICE.TILE_SIZE", "64", "TEST.SLICE.OVERLAP", "0",
                          "TEST.SLICE.INCLUDE_FULL_IMAGE", "False",
                          output_dir=str(tmp_path / "sliced"))  # fmt: skip
    plain = predictions_of(plain_cfg, random_model(plain_cfg))
    assert sum(len(p) for p in plain) > 50
    sliced = predictions_of(sliced_cfg, random_model(sliced_cfg))
    for ours, reference in zip(sliced, plain, strict=True):
        assert ours.size == reference.size == (64, 64)
        assert torch.equal(ours.bbox, reference.bbox)
        assert torch.equal(ours.get_field("scores"), reference.get_field("scores"))
        assert torch.equal(ours.get_field("labels"), reference.get_field("labels"))


def test_run_test_with_tiles_and_the_whole_image(tiny_cfg):
    cfg = tiny_cfg(*SLICE_ON, "INPUT.MIN_SIZE_TEST", "32", "INPUT.MAX_SIZE_TEST", "32",
                   "TEST.SLICE.TILE_SIZE", "32", "TEST.SLICE.OVERLAP", "16",
                   "TEST.SLICE.TILES_PER_BATCH", "4")  # fmt: skip
    model = random_model(cfg)
    sizes = []
    model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].image_sizes))
    predictions = predictions_of(cfg, model)
    # per loader batch of 4 images: 4 x 3 x 3 tiles of 32 px (starts 0, 16, 32) in passes of 4,
    # then the 4 whole images
    assert sizes == [[(32, 32)] * 4] * (9 + 1) * 2
    assert len(predictions) == 8 and all(p.size == (32, 32) for p in predictions)
    dataset = make_data_loader(cfg, is_train=False)[0].dataset
    first_batch = [dataset.load_image(i) for i in range(4)]
    expected = SlicedInference.from_config(cfg)(model, first_batch)  # the plain model
    assert all(len(e) > 5 for e in expected)
    for ours, reference in zip(predictions[:4], expected):  # run_test: the fast path
        torch.testing.assert_close(ours.bbox, reference.bbox)
        torch.testing.assert_close(ours.get_field("scores"), reference.get_field("scores"))


def test_a_tile_gets_the_models_boxes_on_that_crop(tiny_cfg):
    cfg = tiny_cfg(*SLICE_ON, "INPUT.MIN_SIZE_TEST", "160", "INPUT.MAX_SIZE_TEST", "160",
                   "TEST.SLICE.TILE_SIZE", "160", "TEST.SLICE.OVERLAP", "40",
                   "TEST.SLICE.TILES_PER_BATCH", "1", "MODEL.FCOS.INFERENCE_TH", "0.0")  # fmt: skip
    model = random_model(cfg)
    small = np.random.default_rng(0).integers(0, 256, (10, 15, 3), dtype=np.uint8)
    image = cv2.resize(small, (300, 200), interpolation=cv2.INTER_CUBIC)
    slicer = SlicedInference.from_config(cfg)
    transforms = build_transforms(cfg, is_train=False)
    windows = tile_windows(200, 300, 160, 40)
    assert [(w.x0, w.y0) for w in windows] == [(0, 0), (120, 0), (140, 0), (0, 40), (120, 40),
                                               (140, 40)]  # fmt: skip
    for det, window in zip(slicer.tile_detections(model, [image])[0], windows, strict=True):
        crop = np.ascontiguousarray(image[window.y0 : window.y1, window.x0 : window.x1])
        with torch.no_grad():
            (alone,) = model([transforms(crop, None)[0]])
        assert len(alone) > 5
        assert det.size == (300, 200)
        shift = torch.tensor([window.x0, window.y0, window.x0, window.y0], dtype=torch.float32)
        assert torch.equal(det.bbox, alone.bbox + shift)
        assert torch.equal(det.get_field("scores"), alone.get_field("scores"))
        assert torch.equal(det.get_field("labels"), alone.get_field("labels"))


# ------------------------------------------------------------------ small objects, real COCO AP
def _large_image_set(folder, count: int, size: int, sides: tuple[int, int]) -> str:
    """A COCO json set of ``count`` size x size images with small red / white squares."""
    os.makedirs(folder / "images", exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        rects = scatter_rects(size, size, 25, sides, seed=10 + index)
        colors = [WHITE if k % 3 == 0 else RED for k in range(len(rects))]
        name = f"{index:03d}.png"
        picture = draw(size, size, rects, colors)
        cv2.imwrite(str(folder / "images" / name), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        images.append({"id": index + 1, "file_name": name, "height": size, "width": size})
        for (x0, y0, x1, y1), color in zip(rects, colors):
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "iscrowd": 0,
                "category_id": 2 if color == WHITE else 1, "area": (x1 - x0) * (y1 - y0),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
            })  # fmt: skip
    categories = [{"id": 1, "name": "red"}, {"id": 2, "name": "white"}]
    ann_file = str(folder / "val.json")
    with open(ann_file, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return ann_file


def _blob_ap(tiny_cfg, tmp_path, *opts: str) -> float:
    ann_file = _large_image_set(tmp_path / "large", 3, 384, (5, 9))
    register = f'(("large_blobs_val", "{tmp_path / "large" / "images"}", "{ann_file}"),)'
    cfg = tiny_cfg("DATASETS.REGISTER", register, "DATASETS.TEST", '("large_blobs_val",)',
                   "MODEL.FCOS.NUM_CLASSES", "3", "MODEL.BOX_CONVENTION", "continuous",
                   "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "96", *opts)  # fmt: skip
    loader = make_data_loader(cfg, is_train=False)[0]
    model = BlobDetector(build_transforms(cfg, is_train=False), "continuous", min_side=3)
    results, _ = inference(model, loader, "large_blobs_val", device="cpu",
                           tta=build_test_time_augmentation(cfg))  # fmt: skip
    return results.results["bbox"]["AP"]


def test_slicing_finds_the_small_objects_the_resized_image_loses(tiny_cfg, tmp_path):
    """384 px images with 5-9 px squares, the test size 96 px: shrunk 4x they fall under the
    detector's 3 px limit (AP 0); 96 px tiles at the images' own scale find them."""
    plain = _blob_ap(tiny_cfg, tmp_path)
    sliced = _blob_ap(tiny_cfg, tmp_path, *SLICE_ON, "TEST.SLICE.TILE_SIZE", "96",
                      "TEST.SLICE.OVERLAP", "24")  # fmt: skip
    assert plain == 0.0 and sliced > 0.9


# ------------------------------------------------------------------ predictor, detect, demo
@pytest.fixture
def blob_scene():
    rects = scatter_rects(300, 400, 30, (5, 9), seed=3)
    colors = [WHITE if k % 2 else RED for k in range(len(rects))]
    expected = {(float(x0), float(y0), float(x1), float(y1), 2 if c == WHITE else 1)
                for (x0, y0, x1, y1), c in zip(rects, colors)}  # fmt: skip
    return cv2.cvtColor(draw(300, 400, rects, colors), cv2.COLOR_RGB2BGR), expected


def _blob_predictor(cfg, *opts: str) -> FCOSPredictor:
    cfg = cfg.clone()
    cfg.merge_from_list(["MODEL.FCOS.NUM_CLASSES", 3, "MODEL.BOX_CONVENTION", "continuous",
                         "INPUT.MIN_SIZE_TEST", 75, "INPUT.MAX_SIZE_TEST", 100, *opts])  # fmt: skip
    predictor = FCOSPredictor(cfg, 0.0, allow_random_weights=True)
    predictor.model = BlobDetector(predictor.transforms, "continuous", min_side=3)
    return predictor


def test_predictor_with_slicing_finds_small_objects_in_original_pixels(tiny_cfg, blob_scene):
    image_bgr, expected = blob_scene
    plain = _blob_predictor(tiny_cfg())(image_bgr)[0]
    assert len(plain.boxes) == 0  # 400 x 300 shrunk to 100 x 75: 1-2 px objects
    sliced = _blob_predictor(tiny_cfg(), *SLICE_ON, "TEST.SLICE.TILE_SIZE", 75,
                             "TEST.SLICE.OVERLAP", 15)(image_bgr)[0]  # fmt: skip
    assert sliced.image_size == (300, 400)
    found = {(*map(float, b), int(k)) for b, k in zip(sliced.boxes, sliced.labels)}
    assert found >= expected and len(found) - len(expected) <= len(expected)


def _spy_on_slicing(monkeypatch) -> list[tuple[int, int]]:
    sizes = []
    real = SlicedInference.detect_batch

    def detect_spy(self, model, images, device="cpu"):
        sizes.extend(image.shape[:2] for image in images)
        return real(self, model, images, device)

    monkeypatch.setattr(SlicedInference, "detect_batch", detect_spy)
    return sizes


def test_fcos_detect_and_the_demo_slice_with_config_keys(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg()
    torch.manual_seed(0)
    weights = str(tmp_path / "tiny.pth")
    torch.save({"model": build_detection_model(cfg).state_dict()}, weights)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "a.png"), cv2.resize(small, (320, 240), interpolation=cv2.INTER_CUBIC))
    opts = ["DATASETS.REGISTER", f'("{TINY_REGISTER}",)',
            "MODEL.FCOS.INFERENCE_TH", "0.0", *SLICE_ON, "TEST.SLICE.TILE_SIZE", "160",
            "TEST.SLICE.OVERLAP", "32", "INPUT.MIN_SIZE_TEST", "160", "INPUT.MAX_SIZE_TEST",
            "320"]  # fmt: skip
    sizes = _spy_on_slicing(monkeypatch)
    args = argparse.Namespace(
        inputs=[str(folder), *opts], input=[], output=str(tmp_path / "detect"),
        config_file=str(TINY_YAML), weights=weights,
        threshold=0.0, class_thresholds=None, dataset=None, device="cpu", batch_size=1,
        no_fast=False, autocast=None, allow_random_weights=False,
    )  # fmt: skip
    (record,) = detect.run(args)
    assert sizes == [(240, 320)] and len(record["detections"]) > 5
    predictor = detect.build_predictor(args, opts)
    assert predictor.slicer is not None and predictor.slicer.tile_size == 160
    reference = predictor(str(folder / "a.png"))[0]
    boxes = [d["box"] for d in record["detections"]]
    np.testing.assert_allclose(boxes, np.round(reference.boxes, 2), atol=0.011)

    demo = _load_demo()
    monkeypatch.setattr("sys.argv", [
        "fcos_demo.py", "--config-file", args.config_file, "--weights", weights, "--input",
        str(folder), "--output", str(tmp_path / "demo"), "--threshold", "0.0", *opts,
    ])  # fmt: skip
    demo.main()
    assert sizes == [(240, 320)] * 3  # detect, the reference predictor, the demo
    with open(tmp_path / "demo" / detect.JSON_NAME) as f:
        assert json.load(f)[0]["detections"] == record["detections"]


def _load_demo():
    from tests.tools.test_demo import _load_demo_module

    return _load_demo_module()
