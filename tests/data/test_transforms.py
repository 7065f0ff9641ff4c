"""Transforms: size rule, boxes move exactly with the pixels, seeded randomness, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.data.transforms import (
    Compose,
    Normalize,
    RandomHorizontalFlip,
    Resize,
    ToTensor,
    ToUint8Tensor,
    build_transforms,
    get_size,
)
from fcos_core.structures.bounding_box import BoxList

COLOR = (250, 30, 200)


def _image_with_rectangles(w, h, boxes):
    """Black image with filled rectangles covering pixel columns x1..x2-1, rows y1..y2-1."""
    image = np.zeros((h, w, 3), dtype=np.uint8)
    for x1, y1, x2, y2 in boxes:
        image[y1:y2, x1:x2] = COLOR
    target = BoxList(torch.tensor(boxes, dtype=torch.float32), (w, h))
    target.add_field("labels", torch.arange(1, len(boxes) + 1))
    return image, target


def _pixel_box(image, region=None):
    """Tight continuous box of the (mostly) COLOR pixels inside `region` (x1, y1, x2, y2)."""
    mask = image[..., 0] > 127
    if region is not None:
        x1, y1, x2, y2 = region
        keep = np.zeros_like(mask)
        keep[y1:y2, x1:x2] = True
        mask &= keep
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize(
    "size, min_size, max_size, expected",
    [
        ((640, 480), 800, 1333, (800, 1066)),  # (w, h) -> (out_h, out_w)
        ((480, 640), 800, 1333, (1066, 800)),
        ((2000, 500), 800, 1333, (333, 1332)),  # capped: short side round(1333 * 500 / 2000)
        ((800, 600), 600, 1333, (600, 800)),  # already at size
        ((1000, 20), 800, 1333, (27, 1350)),  # extreme aspect ratio
        ((300, 300), 256, None, (256, 256)),
    ],
)
def test_get_size_rule(size, min_size, max_size, expected):
    assert get_size(size, min_size, max_size) == expected


def test_flip_moves_boxes_exactly_with_pixels():
    boxes = [[5, 10, 40, 30], [70, 40, 99, 59]]
    image, target = _image_with_rectangles(100, 60, boxes)
    out, out_target = RandomHorizontalFlip(1.0)(image, target, None)
    for box in out_target.bbox.round().int().tolist():
        assert _pixel_box(out, box) == box
    assert out_target.bbox.tolist() == [[60, 10, 95, 30], [1, 40, 30, 59]]
    assert out_target.get_field("labels").tolist() == [1, 2]


def test_resize_moves_boxes_with_pixels_within_one_pixel():
    boxes = [[40, 30, 100, 90], [130, 10, 190, 50]]
    image, target = _image_with_rectangles(200, 160, boxes)
    out, out_target = Resize(320, 1333)(image, target, None)
    assert out.shape == (320, 400, 3) and out_target.size == (400, 320)
    for box in out_target.bbox.tolist():
        region = [int(v) for v in (box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3)]
        assert np.abs(np.array(_pixel_box(out, region)) - np.array(box)).max() <= 1.0


def test_resize_then_flip_pipeline_keeps_boxes_on_pixels():
    image, target = _image_with_rectangles(150, 100, [[10, 20, 60, 70]])
    pipeline = Compose([Resize((200, 250), 1000), RandomHorizontalFlip(1.0)])
    out, out_target = pipeline(image, target, np.random.default_rng(0))
    box = out_target.bbox[0].tolist()
    assert np.abs(np.array(_pixel_box(out)) - np.array(box)).max() <= 1.0


def test_random_transforms_need_an_rng_and_are_reproducible():
    image, target = _image_with_rectangles(64, 48, [[4, 4, 20, 20]])
    with pytest.raises(ValueError, match="rng"):
        RandomHorizontalFlip(0.5)(image, target, None)
    with pytest.raises(ValueError, match="rng"):
        Resize((32, 48), 100)(image, target, None)
    pipeline = Compose([Resize(tuple(range(20, 60)), 200), RandomHorizontalFlip(0.5), ToTensor()])
    runs = [pipeline(image, target, np.random.default_rng(s)) for s in (3, 3, 4, 5, 6, 7)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1].bbox, runs[1][1].bbox)
    assert len({tuple(r[0].shape) for r in runs}) > 1  # sizes vary with the seed


def test_to_tensor_and_normalize_conventions():
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure red, RGB
    tensor, _ = ToTensor()(image, None)
    assert tensor.shape == (3, 2, 3) and tensor.dtype == torch.float32
    assert tensor[0].eq(1).all() and tensor[1:].eq(0).all()
    bgr, _ = Normalize([100.0, 110.0, 120.0], [1.0, 1.0, 2.0], to_bgr255=True)(tensor.clone(), None)
    assert torch.allclose(bgr[:, 0, 0], torch.tensor([-100.0, -110.0, (255.0 - 120.0) / 2]))
    rgb, _ = Normalize([0.5, 0.5, 0.5], [0.25, 0.5, 0.5], to_bgr255=False)(tensor.clone(), None)
    assert torch.allclose(rgb[:, 0, 0], torch.tensor([2.0, -1.0, -1.0]))


def test_build_transforms_from_config():
    cfg = default_cfg.clone()
    cfg.INPUT.MIN_SIZE_RANGE_TRAIN = (10, 14)
    cfg.INPUT.HORIZONTAL_FLIP_PROB_TRAIN = 0.25
    train = build_transforms(cfg, is_train=True)
    assert train.transforms[0].min_sizes == (10, 11, 12, 13, 14)
    assert (
        isinstance(train.transforms[1], RandomHorizontalFlip) and train.transforms[1].prob == 0.25
    )
    test = build_transforms(cfg, is_train=False)
    assert test.transforms[0].min_sizes == (cfg.INPUT.MIN_SIZE_TEST,)
    assert not any(isinstance(t, RandomHorizontalFlip) for t in test.transforms)
    image, target = _image_with_rectangles(40, 30, [[1, 1, 10, 10]])
    out, _ = test(image, target)  # the test pipeline is deterministic: no rng needed
    assert out.shape == (3, 800, 1066)


def test_default_pipeline_ships_uint8_and_the_original_one_stays_available():
    cfg = default_cfg.clone()
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 30, 100
    image, _ = _image_with_rectangles(40, 30, [[1, 1, 10, 10]])
    uint8 = build_transforms(cfg, is_train=False)
    assert isinstance(uint8.transforms[-1], ToUint8Tensor)
    out, _ = uint8(image, None)
    assert out.dtype == torch.uint8 and out.shape == (3, 30, 40)
    assert torch.equal(out, torch.from_numpy(image).permute(2, 0, 1))
    original = build_transforms(cfg, is_train=False, normalize_in_worker=True)
    assert [type(t) for t in original.transforms[-2:]] == [ToTensor, Normalize]
    assert original(image, None)[0].dtype == torch.float32


def test_to_uint8_tensor_refuses_other_images():
    with pytest.raises(ValueError, match=r"uint8\[H, W, 3\] RGB image, got float32\[4, 5, 3\]"):
        ToUint8Tensor()(np.zeros((4, 5, 3), np.float32), None)
    with pytest.raises(ValueError, match=r"got uint8\[4, 5\]"):
        ToUint8Tensor()(np.zeros((4, 5), np.uint8), None)
