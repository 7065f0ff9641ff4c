"""FCOSPredictor: original-pixel boxes, BGR arrays = files, batching, untrained weights refused."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fcos_core.engine.predictor import FCOSPredictor, UntrainedWeightsError, resolve_weights
from fcos_core.modeling.detector import build_detection_model

# >= 2x2 cells at P7 for the tiny head; a 160 x 200 image is not resized by the test transform.
SIZE = [
    "INPUT.MIN_SIZE_TEST",
    "160",
    "INPUT.MAX_SIZE_TEST",
    "256",
    "MODEL.FCOS.INFERENCE_TH",
    "0.0",
]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """uint8[160, 200, 3] BGR: smooth blobs, so the model's scores are not all ties."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)
    return cv2.resize(small, (200, 160), interpolation=cv2.INTER_CUBIC)


@pytest.fixture
def predictor_factory(tiny_cfg, tmp_path):
    cfg = tiny_cfg(*SIZE)
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pth"
    torch.save({"model": build_detection_model(cfg).state_dict()}, weights)

    def make(**kwargs) -> FCOSPredictor:
        kwargs.setdefault("weights", str(weights))
        return FCOSPredictor(cfg, kwargs.pop("thresholds", 0.0), **kwargs)

    return make


def test_boxes_are_in_original_pixels(predictor_factory, image):
    predictor = predictor_factory(device="cpu")
    # nearest 2x upscale: the test resize (bilinear, exactly 2x down) gives back `image` exactly
    big = cv2.resize(image, (400, 320), interpolation=cv2.INTER_NEAREST)
    small_det, big_det = predictor([image, big])
    assert len(small_det.boxes) > 10
    assert small_det.image_size == (160, 200) and big_det.image_size == (320, 400)
    np.testing.assert_allclose(big_det.scores, small_det.scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(big_det.boxes / 2, small_det.boxes, atol=1e-3)
    assert big_det.boxes[:, 2].max() > 200  # really in the big frame
    np.testing.assert_array_equal(big_det.labels, small_det.labels)


def test_bgr_array_equals_file_and_batches_equal_singles(predictor_factory, image, tmp_path):
    files = tmp_path / "images"
    files.mkdir()
    cv2.imwrite(str(files / "a.png"), image)
    flipped = np.ascontiguousarray(image[:, ::-1])
    cv2.imwrite(str(files / "b.png"), flipped)
    single = predictor_factory()
    from_array = single([image, flipped])
    batched = predictor_factory(batch_size=2)(str(files))  # a folder in
    assert [Path(d.source).name for d in batched] == ["a.png", "b.png"]
    assert from_array[0].source == ""
    for a, b in zip(from_array, batched):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        assert a.class_names == [f"class_{k}" for k in a.labels]


def test_per_class_thresholds(predictor_factory, image):
    everything = predictor_factory()(image)[0]
    cut = np.median(everything.scores)
    only_class_1 = predictor_factory(thresholds=[float(cut)] + [2.0] * 4)(image)[0]
    expected = (everything.labels == 1) & (everything.scores >= cut)
    assert set(only_class_1.labels) <= {1} and len(only_class_1.boxes) == expected.sum()
    assert list(only_class_1.scores) == sorted(only_class_1.scores, reverse=True)


def test_untrained_weights_are_refused(tiny_cfg, tmp_path, image):
    cfg = tiny_cfg(*SIZE)
    with pytest.raises(UntrainedWeightsError, match=r"no weights given \(MODEL.WEIGHT is empty\)"):
        FCOSPredictor(cfg)
    model = build_detection_model(cfg)
    partial = {k: v for k, v in model.state_dict().items() if k.startswith("backbone")}
    torch.save({"model": partial}, tmp_path / "backbone.pth")
    with pytest.raises(UntrainedWeightsError, match=r"backbone\.pth leaves \d+ parameters .*rpn"):
        FCOSPredictor(cfg, weights=str(tmp_path / "backbone.pth"))
    random_ok = FCOSPredictor(cfg, 0.0, allow_random_weights=True)
    assert len(random_ok(image)) == 1


def test_bad_inputs(predictor_factory, tmp_path):
    predictor = predictor_factory()
    with pytest.raises(ValueError, match=r"expected a uint8\[H, W, 3\] BGR image, got float32"):
        predictor(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(FileNotFoundError, match="no such image or folder: .*nope.jpg"):
        predictor(str(tmp_path / "nope.jpg"))
    with pytest.raises(ValueError, match="need one threshold per class"):
        predictor_factory(thresholds=[0.5, 0.5])


def test_model_zoo_names_become_catalog_names():
    assert resolve_weights("FCOS_imprv_R_50_FPN_1x") == "catalog://FCOS/FCOS_imprv_R_50_FPN_1x"
    assert resolve_weights("model_final.pth") == "model_final.pth"


def test_unreachable_weights_url_is_one_clear_error(tiny_cfg, tmp_path, monkeypatch):
    from fcos_core.engine.predictor import WeightsDownloadError

    monkeypatch.setenv("FCOS_CACHE", str(tmp_path / "cache"))
    url = "http://127.0.0.1:9/fcos_weights.pth"  # nothing listens on the discard port
    with pytest.raises(WeightsDownloadError, match=r"could not download the weights http://"
                       r"127\.0\.0\.1:9/fcos_weights\.pth .*pass its path"):  # fmt: skip
        FCOSPredictor(tiny_cfg(*SIZE), weights=url)
