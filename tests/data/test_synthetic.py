"""Synthetic shapes generator: determinism, COCO validity, area buckets, VOC variant, catalog."""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from fcos_core.config import paths_catalog
from fcos_core.config.paths_catalog import DatasetCatalog
from fcos_core.data.build import dataset_entry
from fcos_core.data.datasets import COCODataset, PascalVOCDataset
from fcos_core.data.datasets.synthetic import (
    _image_rng,
    coco_json_path,
    ensure_split,
    generate_coco_split,
    generate_voc_split,
    main,
)
from fcos_core.data.datasets.synthetic_render import SHAPE_CLASSES, render_image


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shapes"))
    return out, generate_coco_split(out, "train", num_images=30, size=256, seed=3)


def test_same_seed_same_json_bytes_and_images(shapes, tmp_path):
    out, json_path = shapes
    again = generate_coco_split(str(tmp_path), "train", num_images=30, size=256, seed=3)
    assert open(json_path, "rb").read() == open(again, "rb").read()
    for name in ("000001.jpg", "000030.jpg"):
        first = open(os.path.join(out, "images", "train", name), "rb").read()
        assert first == open(os.path.join(str(tmp_path), "images", "train", name), "rb").read()
    other = generate_coco_split(str(tmp_path / "b"), "train", num_images=30, size=256, seed=4)
    assert open(json_path, "rb").read() != open(other, "rb").read()


def test_json_loads_in_pycocotools_with_every_area_bucket(shapes):
    _, json_path = shapes
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(json_path)
    assert len(coco.getImgIds()) == 30
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == sorted(SHAPE_CLASSES)
    anns = coco.loadAnns(coco.getAnnIds())
    areas = np.array([a["area"] for a in anns])
    assert (
        (areas < 32**2).any()
        and ((areas >= 32**2) & (areas <= 96**2)).any()
        and (areas > 96**2).any()
    )
    assert len({a["category_id"] for a in anns}) == len(SHAPE_CLASSES)
    for ann in anns:
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 256 and y + h <= 256
        assert ann["area"] <= w * h


def test_boxes_are_tight_around_visible_pixels():
    rng = _image_rng(0, "x", 0)
    image, objects = render_image(rng, 128)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8 and objects
    min_side = min(min(o.box[2] - o.box[0], o.box[3] - o.box[1]) for o in objects)
    assert min_side >= 1


def test_rendering_does_not_depend_on_worker_count(tmp_path):
    from fcos_core.data.datasets import synthetic

    a = list(synthetic._render_split("val", 6, 96, 1, workers=1))
    b = list(synthetic._render_split("val", 6, 96, 1, workers=2))
    assert [x[0] for x in a] == [x[0] for x in b] == list(range(1, 7))
    assert all(np.array_equal(x[1], y[1]) and x[2] == y[2] for x, y in zip(a, b))


def test_dataset_loads_the_generated_split(shapes):
    out, json_path = shapes
    ds = COCODataset(
        json_path, os.path.join(out, "images", "train"), remove_images_without_annotations=True
    )
    image, target, _ = ds[0]
    assert image.shape == (256, 256, 3) and len(target) > 0
    assert ds.class_names == SHAPE_CLASSES


def test_voc_variant_loads_in_pascal_voc_dataset(tmp_path):
    out = str(tmp_path / "voc")
    generate_voc_split(out, "test", num_images=6, size=96, seed=2)
    hard = PascalVOCDataset(out, "test", use_difficult=True, classes=SHAPE_CLASSES)
    easy = PascalVOCDataset(out, "test", use_difficult=False, classes=SHAPE_CLASSES)
    assert len(hard) == 6
    for index in range(6):
        _, objects = render_image(_image_rng(2, "test", index), 96)
        gt = hard.get_groundtruth(index)
        assert gt.bbox.tolist() == [list(map(float, o.box)) for o in objects]
        assert gt.get_field("labels").tolist() == [o.category + 1 for o in objects]
        assert gt.get_field("difficult").tolist() == [o.area < 64 for o in objects]
    assert sum(len(easy.get_groundtruth(i)) for i in range(len(easy))) <= sum(
        len(hard.get_groundtruth(i)) for i in range(6)
    )
    image, _, _ = hard[0]
    assert image.shape == (96, 96, 3)


def test_ensure_split_reuses_identical_and_regenerates_changed(tmp_path):
    out = str(tmp_path / "s")
    ensure_split("coco", out, "val", 3, 64, 0)
    path = coco_json_path(out, "val")
    stamp = os.stat(path).st_mtime_ns
    ensure_split("coco", out, "val", 3, 64, 0)
    assert os.stat(path).st_mtime_ns == stamp
    ensure_split("coco", out, "val", 4, 64, 0)
    assert len(json.load(open(path))["images"]) == 4


def test_catalog_lookup_writes_nothing_and_data_renders_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setattr(DatasetCatalog, "DATA_DIR", str(tmp_path))
    monkeypatch.setattr(DatasetCatalog, "SYNTHETIC", dict(DatasetCatalog.SYNTHETIC))
    DatasetCatalog.register_synthetic("tiny_shapes_val", "val", num_images=4, image_size=64)
    DatasetCatalog.register_synthetic(
        "tiny_shapes_voc", "test", num_images=3, image_size=64, fmt="voc"
    )
    looked_up = DatasetCatalog.get("tiny_shapes_val")
    assert looked_up["synthetic"]["num_images"] == 4 and os.listdir(tmp_path) == []
    entry = dataset_entry(paths_catalog, "tiny_shapes_val")
    assert entry["factory"] == "COCODataset" and entry["args"] == looked_up["args"]
    assert entry["args"]["ann_file"].startswith(str(tmp_path)) and os.path.isfile(
        entry["args"]["ann_file"]
    )
    voc = dataset_entry(paths_catalog, "tiny_shapes_voc")
    ds = PascalVOCDataset(**voc["args"])
    assert len(ds) == 3 and ds.class_names == SHAPE_CLASSES


def test_cli_writes_requested_splits(tmp_path, capsys):
    main(["--out", str(tmp_path), "--splits", "a:2", "b:3", "--size", "64", "--seed", "9"])
    assert len(json.load(open(coco_json_path(str(tmp_path), "b")))["images"]) == 3
    assert "a: 2 images" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--splits", "oops"])


def test_transforms_keep_synthetic_boxes_on_objects(shapes):
    from fcos_core.data.transforms import Compose, RandomHorizontalFlip, Resize, ToTensor

    out, json_path = shapes
    transforms = Compose([Resize(320, 1000), RandomHorizontalFlip(1.0), ToTensor()])
    ds = COCODataset(json_path, os.path.join(out, "images", "train"), True, transforms=transforms)
    image, target, _ = ds[(0, 0)]
    assert image.shape == (3, 320, 320)
    assert torch.all(target.bbox >= 0) and torch.all(target.bbox <= 320)
