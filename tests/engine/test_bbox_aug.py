"""The original's ``fcos_core.engine.bbox_aug.im_detect_bbox_aug(model, images, device)``: PIL or
array images, the global config by default, and with only the identity pass exactly the plain
detections of the test transform (a model built without TTA, same weights)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from fcos_core.data.transforms import build_transforms
from fcos_core.engine import bbox_aug
from fcos_core.engine.bbox_aug import im_detect_bbox_aug
from fcos_core.structures import to_image_list
from tests.engine.test_tta import TEST_SIZE, TTA_ON, random_model


def _images() -> list[np.ndarray]:
    generator = np.random.default_rng(3)
    return [generator.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(2)]


def _plain_detections(cfg, model, images):
    transform = build_transforms(cfg, is_train=False)
    inputs = [transform(image, None)[0] for image in images]
    with torch.no_grad():
        return model(to_image_list(inputs, cfg.DATALOADER.SIZE_DIVISIBILITY))


def test_identity_pass_from_pil_images_with_the_global_config(tiny_cfg, monkeypatch):
    tta_cfg = tiny_cfg(*TEST_SIZE, *TTA_ON)
    plain_cfg = tiny_cfg(*TEST_SIZE)
    monkeypatch.setattr(bbox_aug, "global_cfg", tta_cfg)  # what the original reads
    images = _images()
    model = random_model(tta_cfg)
    with torch.no_grad():
        ours = im_detect_bbox_aug(model, [Image.fromarray(im) for im in images], "cpu")
    plain_model = random_model(plain_cfg)
    expected = _plain_detections(plain_cfg, plain_model, images)
    assert sum(len(e) for e in expected) > 20
    for got, want in zip(ours, expected, strict=True):
        assert got.size == want.size == (72, 48)  # 64 x 96 at shorter side 48
        assert torch.equal(got.bbox, want.bbox)
        assert torch.equal(got.get_field("scores"), want.get_field("scores"))
        assert torch.equal(got.get_field("labels"), want.get_field("labels"))


def test_arrays_and_an_explicit_config_give_the_same_as_pil(tiny_cfg):
    cfg = tiny_cfg(*TEST_SIZE, *TTA_ON, "TEST.BBOX_AUG.H_FLIP", "True")
    model = random_model(cfg)
    images = _images()
    with torch.no_grad():
        from_arrays = im_detect_bbox_aug(model, images, torch.device("cpu"), cfg)
        from_pil = im_detect_bbox_aug(model, [Image.fromarray(im) for im in images], "cpu", cfg)
    for a, b in zip(from_arrays, from_pil, strict=True):
        assert len(a) > 0 and torch.equal(a.bbox, b.bbox)
