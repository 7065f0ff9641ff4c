"""Bad input: a clear error naming the file and id, or safe handling with a warning."""

from __future__ import annotations

import logging
import math
import os

import cv2
import numpy as np
import pytest

from fcos_core.data.datasets import COCODataset, ImageReadError, PascalVOCDataset
from fcos_core.data.transforms import Compose, Resize, ToTensor


def _dataset(writer, train=True, **kwargs):
    return COCODataset(
        writer.write(), writer.image_dir, remove_images_without_annotations=train, **kwargs
    )


def _two_images(writer):
    writer.add_image(1, boxes=[(2, 2, 10, 10, 3)])
    return writer.add_image(2, boxes=[(5, 5, 20, 20, 7)])


# ------------------------------------------------------------------------- image files
def _corrupt(path):
    with open(path, "wb") as f:
        f.write(b"\xff\xd8 this is not really a jpeg" * 10 + b"\xff\xd9")


def _truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [_corrupt, _truncate, os.remove])
def test_bad_image_file_raises_naming_file_and_id_in_testing(coco_writer, damage):
    path = _two_images(coco_writer)
    damage(path)
    ds = _dataset(coco_writer, train=False)
    with pytest.raises(OSError) as err:
        ds[1]
    assert path in str(err.value) and "image id 2" in str(err.value)
    assert isinstance(err.value, FileNotFoundError if damage is os.remove else ImageReadError)


@pytest.mark.parametrize("damage", [_corrupt, _truncate, os.remove])
def test_bad_image_is_skipped_with_a_warning_in_training(coco_writer, damage, caplog):
    path = _two_images(coco_writer)
    damage(path)
    ds = _dataset(coco_writer, train=True, skip_bad_images=True)
    with caplog.at_level(logging.WARNING):
        image, target, index = ds[(1, 77)]
    assert index == 0 and len(target) == 1  # deterministic substitute: the only good image
    assert "skipping bad image" in caplog.text and path in caplog.text
    no_skip = _dataset(coco_writer, train=True, skip_bad_images=False)
    with pytest.raises(OSError):
        no_skip[(1, 77)]


def test_all_images_bad_gives_up_after_bounded_retries(coco_writer):
    os.remove(coco_writer.add_image(1, boxes=[(2, 2, 10, 10, 3)]))
    ds = _dataset(coco_writer, train=True, skip_bad_images=True)
    with pytest.raises(FileNotFoundError):
        ds[(0, 1)]


def test_image_size_differing_from_annotation_is_an_error(coco_writer):
    coco_writer.add_image(1, width=64, height=48, boxes=[(2, 2, 10, 10, 3)])
    coco_writer.images[0]["width"] = 65
    with pytest.raises(ImageReadError, match="65x48"):
        _dataset(coco_writer, train=False)[0]


def test_grayscale_and_rgba_images_become_three_channels(coco_writer):
    gray = np.full((20, 30), 99, dtype=np.uint8)
    rgba = np.zeros((20, 30, 4), dtype=np.uint8)
    rgba[..., 1] = 200
    rgba[..., 3] = 128
    coco_writer.add_image(1, 30, 20, file_name="gray.jpg", pixels=gray, boxes=[(1, 1, 5, 5, 3)])
    coco_writer.add_image(2, 30, 20, file_name="rgba.png", pixels=rgba, boxes=[(1, 1, 5, 5, 3)])
    ds = _dataset(coco_writer, train=False, transforms=Compose([ToTensor()]))
    gray_img, _, _ = ds[0]
    rgba_img, _, _ = ds[1]
    assert gray_img.shape == (3, 20, 30) and rgba_img.shape == (3, 20, 30)
    assert np.allclose(gray_img.numpy(), 99 / 255, atol=2 / 255)
    assert np.allclose(rgba_img[1].numpy(), 200 / 255) and rgba_img[0].eq(0).all()


def test_extreme_aspect_ratio_works(coco_writer):
    coco_writer.add_image(1, width=1000, height=20, boxes=[(100, 2, 300, 10, 3)])
    ds = _dataset(coco_writer, train=True, transforms=Compose([Resize(800, 1333), ToTensor()]))
    image, target, _ = ds[0]
    assert image.shape == (3, 27, 1350)
    assert target.bbox[:, 2].max() <= 1350 and target.bbox[:, 3].max() <= 27 and len(target) == 1


# ------------------------------------------------------------------------- json files
def test_json_that_is_not_json(coco_writer, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match=f"{path}.*not valid JSON"):
        COCODataset(str(path), coco_writer.image_dir, remove_images_without_annotations=True)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        COCODataset(str(tmp_path / "missing.json"), ".", remove_images_without_annotations=True)


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_json_missing_a_required_list(coco_writer, key):
    _two_images(coco_writer)
    path = coco_writer.write(drop_keys=[key])
    with pytest.raises(ValueError, match=f"{path}.*'{key}'"):
        COCODataset(path, coco_writer.image_dir, remove_images_without_annotations=True)


def test_json_without_annotations_is_accepted_for_testing(coco_writer, caplog):
    _two_images(coco_writer)
    path = coco_writer.write(drop_keys=["annotations"])
    with caplog.at_level(logging.WARNING):
        ds = COCODataset(path, coco_writer.image_dir, remove_images_without_annotations=False)
    assert len(ds) == 2 and len(ds.get_groundtruth(0)) == 0 and "no 'annotations'" in caplog.text


def test_unknown_category_id_is_an_error_naming_the_annotation(coco_writer):
    _two_images(coco_writer)
    coco_writer.add_annotation(2, [1, 1, 5, 5], category_id=99, ann_id=555)
    with pytest.raises(ValueError, match=r"annotation id 555 \(image id 2\) has category id 99"):
        _dataset(coco_writer)


def test_annotation_of_unknown_image_is_an_error(coco_writer):
    _two_images(coco_writer)
    coco_writer.add_annotation(42, [1, 1, 5, 5], category_id=3, ann_id=556)
    with pytest.raises(ValueError, match="annotation id 556 refers to unknown image id 42"):
        _dataset(coco_writer)


def test_degenerate_boxes_are_dropped_with_a_warning(coco_writer, caplog):
    coco_writer.add_image(1, boxes=[(2, 2, 10, 10, 3)])
    bad = {
        coco_writer.add_annotation(1, [5, 5, 0, 10], 3): "zero width",
        coco_writer.add_annotation(1, [5, 5, 10, -3], 3): "negative height",
        coco_writer.add_annotation(1, [math.nan, 5, 10, 10], 3): "nan",
        coco_writer.add_annotation(1, [5, 5, 10], 3): "three numbers",
    }
    with caplog.at_level(logging.WARNING):
        ds = _dataset(coco_writer)
    assert len(ds.get_groundtruth(0)) == 1
    assert "dropped 4 annotation(s)" in caplog.text
    for ann_id in bad:
        assert f"annotation id {ann_id} (image id 1)" in caplog.text
    assert len(ds.coco.getAnnIds()) == 1  # evaluation never sees them either


def test_boxes_outside_the_image_are_clipped_or_dropped_with_a_warning(coco_writer, caplog):
    coco_writer.add_image(1, width=64, height=48)
    partly = coco_writer.add_annotation(1, [50, -10, 30, 30], 3)
    wholly = coco_writer.add_annotation(1, [70, 60, 10, 10], 7)
    tiny_excess = coco_writer.add_annotation(1, [10, 10, 54.2, 38.3], 10)  # float rounding
    with caplog.at_level(logging.WARNING):
        ds = _dataset(coco_writer)
    assert ds.get_groundtruth(0).bbox.tolist() == [[50, 0, 64, 20], [10, 10, 64, 48]]
    assert f"annotation id {partly} (image id 1)" in caplog.text
    assert f"annotation id {wholly} (image id 1)" in caplog.text and "wholly outside" in caplog.text
    assert f"annotation id {tiny_excess} " not in caplog.text


def test_duplicate_image_ids_are_an_error(coco_writer):
    _two_images(coco_writer)
    coco_writer.images.append(dict(coco_writer.images[0]))
    with pytest.raises(ValueError, match="duplicate image id 1"):
        _dataset(coco_writer)


def test_empty_dataset_is_an_error_naming_it(coco_writer):
    with pytest.raises(ValueError, match="dataset my_empty_set: .* contains no images"):
        COCODataset(coco_writer.write(), coco_writer.image_dir, False, name="my_empty_set")
    coco_writer.add_image(1, boxes=[(2, 2, 10, 10, 3, 1)])  # crowd only: nothing to train on
    with pytest.raises(ValueError, match="dataset crowd_only: none of the 1 images"):
        COCODataset(coco_writer.write(), coco_writer.image_dir, True, name="crowd_only")


# ------------------------------------------------------------------------- VOC files
def _voc_folder(root, objects, size=(40, 30)):
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    cv2.imwrite(
        os.path.join(root, "JPEGImages", "a.jpg"), np.zeros((size[1], size[0], 3), np.uint8)
    )
    body = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, d, b in objects
    )
    xml = (
        f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size>"
        f"{body}</annotation>"
    )
    with open(os.path.join(root, "Annotations", "a.xml"), "w") as f:
        f.write(xml)
    with open(os.path.join(root, "ImageSets", "Main", "train.txt"), "w") as f:
        f.write("a\n")


def test_voc_boxes_difficult_unknown_class_and_bad_boxes(tmp_path, caplog):
    root = str(tmp_path / "VOC")
    _voc_folder(
        root, [("dog", 0, (1, 1, 10, 10)), ("cat", 1, (5, 5, 20, 20)), ("dog", 0, (30, 5, 20, 9))]
    )
    with caplog.at_level(logging.WARNING):
        easy = PascalVOCDataset(root, "train", use_difficult=False)
    assert easy.get_groundtruth(0).bbox.tolist() == [
        [0, 0, 10, 10]
    ]  # 1-based inclusive -> continuous
    assert "object #2 (dog)" in caplog.text
    hard = PascalVOCDataset(root, "train", use_difficult=True)
    assert hard.get_groundtruth(0).get_field("difficult").tolist() == [False, True]
    assert hard.get_groundtruth(0).get_field("labels").tolist() == [12, 8]
    _voc_folder(root, [("unicorn", 0, (1, 1, 10, 10))])
    with pytest.raises(ValueError, match=r"a\.xml: object #0 has class 'unicorn'"):
        PascalVOCDataset(root, "train")
    with pytest.raises(FileNotFoundError, match="val.txt"):
        PascalVOCDataset(root, "val")
