"""COCODataset: label mapping, round trip of boxes through transforms, filtering, crowd boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcos_core.data.datasets import COCODataset
from fcos_core.data.transforms import Compose, RandomHorizontalFlip, Resize, ToTensor
from fcos_core.structures.bounding_box import FLIP_LEFT_RIGHT

BOXES = {
    1: [(4.5, 6.0, 20.0, 12.5, 3), (30.0, 10.0, 25.0, 30.0, 10)],
    2: [(0.0, 0.0, 64.0, 48.0, 7), (10.0, 10.0, 5.0, 5.0, 3, 1)],  # second one is crowd
    3: [],
    4: [(1.0, 2.0, 3.0, 4.0, 3, 1)],  # only a crowd box
}


@pytest.fixture
def coco_files(coco_writer):
    for image_id, boxes in BOXES.items():
        coco_writer.add_image(image_id, width=64, height=48, boxes=boxes)
    return coco_writer.write(), coco_writer.image_dir


def _xyxy(box):
    x, y, w, h = box[:4]
    return [x, y, x + w, y + h]


def test_contiguous_labels_from_non_contiguous_json_ids(coco_files):
    ds = COCODataset(*coco_files, remove_images_without_annotations=False)
    assert ds.json_category_id_to_contiguous_id == {3: 1, 7: 2, 10: 3}
    assert ds.contiguous_category_id_to_json_id == {1: 3, 2: 7, 3: 10}
    assert ds.class_names == ("cat", "dog", "cow")
    labels = ds.get_groundtruth(0).get_field("labels").tolist()
    assert [ds.contiguous_category_id_to_json_id[label] for label in labels] == [3, 10]


def test_round_trip_boxes_within_one_pixel_after_undoing_transforms(coco_files):
    transforms = Compose([Resize((100, 130), 1000), RandomHorizontalFlip(1.0), ToTensor()])
    ds = COCODataset(*coco_files, remove_images_without_annotations=True, transforms=transforms)
    for index in range(len(ds)):
        image, target, idx = ds[(index, 1234 + index)]
        assert idx == index and image.shape[1:] == (target.size[1], target.size[0])
        info = ds.get_img_info(index)
        undone = target.transpose(FLIP_LEFT_RIGHT).resize((info["width"], info["height"]))
        expected = [b for b in BOXES[info["id"]] if len(b) == 5]  # crowd boxes are not targets
        assert torch.allclose(undone.bbox, torch.tensor([_xyxy(b) for b in expected]), atol=1.0)
        json_ids = [
            ds.contiguous_category_id_to_json_id[int(lab)] for lab in target.get_field("labels")
        ]
        assert json_ids == [b[4] for b in expected]


def test_training_drops_images_without_usable_boxes_testing_keeps_them(coco_files):
    train = COCODataset(*coco_files, remove_images_without_annotations=True)
    test = COCODataset(*coco_files, remove_images_without_annotations=False)
    assert train.ids == [1, 2] and test.ids == [1, 2, 3, 4]
    assert test.id_to_img_map == {0: 1, 1: 2, 2: 3, 3: 4}
    assert len(test.get_groundtruth(2)) == 0 and len(test.get_groundtruth(3)) == 0
    assert test.get_img_info(1) == {"id": 2, "file_name": "0002.jpg", "width": 64, "height": 48}


def test_crowd_boxes_are_not_targets_but_stay_for_evaluation(coco_files):
    ds = COCODataset(*coco_files, remove_images_without_annotations=False)
    assert len(ds.get_groundtruth(1)) == 1
    crowd = [a for a in ds.coco.loadAnns(ds.coco.getAnnIds(imgIds=[2])) if a["iscrowd"]]
    assert len(crowd) == 1


def test_items_are_pure_functions_of_their_key(coco_files):
    transforms = Compose(
        [Resize(tuple(range(40, 120)), 1000), RandomHorizontalFlip(0.5), ToTensor()]
    )
    ds = COCODataset(*coco_files, remove_images_without_annotations=True, transforms=transforms)
    a, b = ds[(0, 42)], ds[(0, 42)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1].bbox, b[1].bbox)
    shapes = {tuple(ds[(0, s)][0].shape) for s in range(8)}
    assert len(shapes) > 1
    assert torch.equal(ds[1][0], ds[1][0])  # a plain index is deterministic too


def test_raw_image_without_transforms_is_rgb_uint8(coco_writer):
    pixels = np.zeros((10, 12, 3), dtype=np.uint8)
    pixels[..., 2] = 255  # red in OpenCV's BGR order
    coco_writer.add_image(
        1, width=12, height=10, file_name="red.png", pixels=pixels, boxes=[(1, 1, 4, 4, 3)]
    )
    ds = COCODataset(
        coco_writer.write(), coco_writer.image_dir, remove_images_without_annotations=True
    )
    image, target, _ = ds[0]
    assert image.shape == (10, 12, 3) and image.dtype == np.uint8
    assert (image[..., 0] == 255).all() and (image[..., 1:] == 0).all()
