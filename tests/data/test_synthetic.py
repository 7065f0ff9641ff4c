"""Synthetic shapes generator: determinism, COCO validity, area buckets, VOC variant, catalog."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re

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
from fcos_core.data.datasets.synthetic_render import (
    DEFAULT_OBJECTS,
    SHAPE_CLASSES,
    ObjectSpec,
    _sample_box,
    render_image,
)

SMALL = ObjectSpec(min_side=4, max_side=24, min_objects=12, max_objects=20)


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


# sha256 of the images and objects rendered before ObjectSpec existed (images 0-5 of split
# "train2000", seed 0, 256 px): the default spec must keep the original bytes.
ORIGINAL_RENDER_SHA256 = "258f2b8c381ed374ff3cf0f2e815cc8c81903119f5275b035e288b544a56743e"


def _render_digest(spec: ObjectSpec | None, count: int = 6) -> str:
    digest = hashlib.sha256()
    for index in range(count):
        rng = _image_rng(0, "train2000", index)
        image, objects = render_image(rng, 256) if spec is None else render_image(rng, 256, spec)
        digest.update(image.tobytes())
        digest.update(repr(objects).encode())
    return digest.hexdigest()


def test_default_object_spec_renders_the_original_bytes():
    assert _render_digest(None) == ORIGINAL_RENDER_SHA256
    assert _render_digest(ObjectSpec(10, None, 1, 8)) == ORIGINAL_RENDER_SHA256
    assert _render_digest(SMALL) != ORIGINAL_RENDER_SHA256


def test_default_object_spec_adds_nothing_to_the_json_info(tmp_path):
    info = json.load(open(generate_coco_split(str(tmp_path), "val", 2, 64, 0)))["info"]
    assert "objects" not in info and info["version"] == 1
    path = generate_coco_split(str(tmp_path / "s"), "val", 2, 64, 0, SMALL)
    assert json.load(open(path))["info"]["objects"] == {
        "min_side": 4,
        "max_side": 24,
        "min_objects": 12,
        "max_objects": 20,
    }


def test_sampled_boxes_respect_the_side_range():
    rng = np.random.default_rng(5)
    boxes = np.array([_sample_box(rng, 256, SMALL) for _ in range(2000)])
    sides = np.concatenate([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    assert sides.min() == 4 and sides.max() == 24
    default = np.array([_sample_box(rng, 256, DEFAULT_OBJECTS) for _ in range(500)])
    assert (default[:, 2] - default[:, 0]).max() > 100  # the original: up to 90% of the side


def test_small_spec_objects_are_small_and_many():
    counts, sides = [], []
    for index in range(8):
        _, objects = render_image(_image_rng(1, "small", index), 256, SMALL)
        counts.append(len(objects))
        sides += [max(o.box[2] - o.box[0], o.box[3] - o.box[1]) for o in objects]
    # visible boxes: occlusion only shrinks them; an ellipse of even width w spans w + 1 px
    assert max(sides) <= SMALL.max_side + 1 and min(sides) >= 1
    assert all(c <= SMALL.max_objects for c in counts) and np.mean(counts) >= SMALL.min_objects


def test_same_object_spec_same_bytes_other_spec_other_bytes(tmp_path):
    a = generate_coco_split(str(tmp_path / "a"), "small", 3, 128, 7, SMALL)
    b = generate_coco_split(str(tmp_path / "b"), "small", 3, 128, 7, SMALL)
    c = generate_coco_split(str(tmp_path / "c"), "small", 3, 128, 7, ObjectSpec(4, 24, 2, 3))
    assert open(a, "rb").read() == open(b, "rb").read() != open(c, "rb").read()
    for name in ("000001.jpg", "000003.jpg"):
        paths = [os.path.join(str(tmp_path), d, "images", "small", name) for d in "ab"]
        assert open(paths[0], "rb").read() == open(paths[1], "rb").read()


def test_ensure_split_regenerates_when_the_object_spec_changes(tmp_path):
    out = str(tmp_path / "s")
    ensure_split("coco", out, "val", 2, 64, 0, SMALL)
    path = coco_json_path(out, "val")
    stamp = os.stat(path).st_mtime_ns
    ensure_split("coco", out, "val", 2, 64, 0, SMALL)
    assert os.stat(path).st_mtime_ns == stamp
    ensure_split("coco", out, "val", 2, 64, 0)
    assert "objects" not in json.load(open(path))["info"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_side": 0}, "min_side must be >= 1 px, got 0"),
        ({"min_side": 8, "max_side": 8}, "max_side must be > min_side (8), got 8"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects=3, max_objects=2"),
        ({"min_objects": 0}, "min_objects=0"),
    ],
)
def test_object_spec_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ObjectSpec(**kwargs)


def test_objects_larger_than_the_image_are_rejected():
    with pytest.raises(ValueError, match="objects of up to 80 px do not fit 64 px images"):
        render_image(np.random.default_rng(0), 64, ObjectSpec(4, 80))


def test_small_object_catalog_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(DatasetCatalog, "DATA_DIR", str(tmp_path))
    small = DatasetCatalog.get("shapes_small_val")["synthetic"]
    assert small["image_size"] == 256 and small["objects"]["max_side"] <= 40
    assert small["split"] != DatasetCatalog.get("shapes_val")["synthetic"]["split"]
    large = DatasetCatalog.get("shapes_large_val")["synthetic"]
    assert large["image_size"] == 1024 and large["num_images"] <= 50
    assert DatasetCatalog.get("shapes_val")["synthetic"]["objects"] is None
    monkeypatch.setattr(DatasetCatalog, "SYNTHETIC", dict(DatasetCatalog.SYNTHETIC))
    DatasetCatalog.register_synthetic(
        "tiny_small", "val", 3, image_size=64, objects={"min_side": 4, "max_side": 12}
    )
    entry = dataset_entry(paths_catalog, "tiny_small")
    info = json.load(open(entry["args"]["ann_file"]))["info"]
    assert info["objects"] == {"min_side": 4, "max_side": 12, "min_objects": 1, "max_objects": 8}


def test_cli_object_options(tmp_path):
    args = ["--out", str(tmp_path), "--splits", "s:2", "--size", "64"]
    main([*args, "--min-side", "4", "--max-side", "12", "--objects", "5:9"])
    info = json.load(open(coco_json_path(str(tmp_path), "s")))["info"]
    assert info["objects"] == {"min_side": 4, "max_side": 12, "min_objects": 5, "max_objects": 9}
    with pytest.raises(SystemExit):
        main([*args, "--max-side", "100"])
