"""MODEL.BOX_CONVENTION in the data pipeline and evaluation: json / VOC boxes -> BoxList ->
detections json, round trips, and the original's +1 VOC/COCO facts worked out by hand."""

from __future__ import annotations

import os

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.config.paths_catalog import DatasetCatalog
from fcos_core.data.build import build_dataset, load_catalog
from fcos_core.data.datasets import COCODataset, PascalVOCDataset
from fcos_core.data.evaluation.coco_eval import (
    evaluate_predictions_on_coco,
    prepare_for_coco_detection,
)
from fcos_core.data.evaluation.voc_eval import do_voc_evaluation
from fcos_core.data.transforms import Compose, RandomHorizontalFlip, Resize, ToTensor
from fcos_core.engine.inference import load_predictions, save_predictions
from fcos_core.structures.bounding_box import FLIP_LEFT_RIGHT

# (x, y, w, h, category): plain boxes, one 1 px wide, one past the right/bottom border.
PLAIN = [(4.5, 6.0, 20.0, 12.5, 3), (30.0, 10.0, 25.0, 30.0, 10)]
THIN = (10.0, 10.0, 1.0, 5.0, 7)
PAST = (50.0, 40.0, 20.0, 20.0, 7)


@pytest.fixture
def coco_files(coco_writer):
    coco_writer.add_image(1, width=64, height=48, boxes=[*PLAIN, THIN, PAST])
    return coco_writer.write(), coco_writer.image_dir


def _as_detections(target):
    det = target.copy_with_fields("labels")
    det.add_field("scores", torch.linspace(0.9, 0.5, len(det)))
    return det


def test_plus_one_targets_are_the_originals(coco_files):
    ds = COCODataset(*coco_files, False, box_convention="plus_one")
    gt = ds.get_groundtruth(0)
    assert gt.convention == "plus_one"
    # x2 = x + w - 1; the 1 px wide box is empty (x2 == x1) and dropped, as by the original's
    # clip_to_image(remove_empty=True); the box past the border ends on pixel 63 / 47.
    expected = [[x, y, x + w - 1, y + h - 1] for x, y, w, h, _ in PLAIN] + [[50, 40, 63, 47]]
    assert torch.allclose(gt.bbox, torch.tensor(expected))
    cont = COCODataset(*coco_files, False, box_convention="continuous").get_groundtruth(0)
    assert len(cont) == 4 and cont.convention == "continuous"
    with pytest.raises(ValueError, match="MODEL.BOX_CONVENTION must be one of"):
        COCODataset(*coco_files, False, box_convention="plus")


@pytest.mark.parametrize("convention", ["plus_one", "continuous"])
def test_json_box_round_trip(coco_files, convention):
    """json [x, y, w, h] -> BoxList -> detections json: the same [x, y, w, h] (clipped)."""
    ds = COCODataset(*coco_files, False, box_convention=convention)
    results = prepare_for_coco_detection([_as_detections(ds.get_groundtruth(0))], ds)
    boxes = [r["bbox"] for r in results]
    expected = [list(b[:4]) for b in PLAIN]
    expected += [[10.0, 10.0, 1.0, 5.0]] if convention == "continuous" else []
    expected += [[50.0, 40.0, 14.0, 8.0]]
    assert torch.allclose(torch.tensor(boxes), torch.tensor(expected), atol=1e-5)
    assert [r["category_id"] for r in results] == [3, 10] + [7] * (len(expected) - 2)


@pytest.mark.parametrize("convention", ["plus_one", "continuous"])
def test_ground_truth_as_detections_gives_ap_one(coco_writer, convention):
    """Through pycocotools: a box written 1 px narrower (the +1 dropped on the way back) would
    miss the IoU 0.9 and 0.95 thresholds of the 20 x 12.5 box."""
    coco_writer.add_image(1, width=64, height=48, boxes=PLAIN)
    ds = COCODataset(coco_writer.write(), coco_writer.image_dir, False, box_convention=convention)
    results = prepare_for_coco_detection([_as_detections(ds.get_groundtruth(0))], ds)
    assert evaluate_predictions_on_coco(ds.coco, results).stats[0] == pytest.approx(1.0)


@pytest.mark.parametrize("convention", ["plus_one", "continuous"])
def test_transforms_keep_the_convention_and_undo_exactly(coco_files, convention):
    transforms = Compose([Resize((96,), 1000), RandomHorizontalFlip(1.0), ToTensor()])
    ds = COCODataset(*coco_files, False, transforms=transforms, box_convention=convention)
    _, target, _ = ds[(0, 3)]
    assert target.convention == convention
    undone = target.transpose(FLIP_LEFT_RIGHT).resize((64, 48))
    assert torch.allclose(undone.bbox, ds.get_groundtruth(0).bbox, atol=1e-4)


def test_predictions_file_keeps_the_convention(coco_files, tmp_path):
    ds = COCODataset(*coco_files, False, box_convention="plus_one")
    path = str(tmp_path / "predictions.pth")
    save_predictions([_as_detections(ds.get_groundtruth(0))], path)
    (loaded,) = load_predictions(path)
    assert loaded.convention == "plus_one"
    assert prepare_for_coco_detection([loaded], ds)[0]["bbox"] == pytest.approx(list(PLAIN[0][:4]))


VOC_XML = """<annotation><size><width>40</width><height>30</height><depth>3</depth></size>
<object><name>cat</name><difficult>0</difficult>
<bndbox><xmin>5</xmin><ymin>6</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object>
<object><name>dog</name><difficult>0</difficult>
<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object>
</annotation>"""


@pytest.fixture
def voc_dir(tmp_path):
    root = tmp_path / "VOC"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        os.makedirs(root / sub)
    (root / "Annotations" / "a.xml").write_text(VOC_XML)
    (root / "ImageSets" / "Main" / "test.txt").write_text("a\n")
    return str(root)


@pytest.mark.parametrize(
    ("convention", "expected"),
    [
        # The original: every VOC coordinate - 1 (1-based inclusive -> 0-based inclusive).
        ("plus_one", [[4.0, 5.0, 19.0, 29.0], [0.0, 0.0, 9.0, 11.0]]),
        ("continuous", [[4.0, 5.0, 20.0, 30.0], [0.0, 0.0, 10.0, 12.0]]),
    ],
)
def test_voc_boxes_and_evaluation(voc_dir, convention, expected):
    ds = PascalVOCDataset(voc_dir, "test", classes=("cat", "dog"), box_convention=convention)
    gt = ds.get_groundtruth(0)
    assert gt.bbox.tolist() == expected and gt.convention == convention
    assert gt.area().tolist() == [16 * 25, 10 * 12]  # the same pixels in both conventions
    result = do_voc_evaluation(ds, [_as_detections(gt)])
    assert result["map"] == pytest.approx(1.0)


def test_build_dataset_passes_the_convention(coco_files, monkeypatch):
    monkeypatch.setattr(DatasetCatalog, "REGISTERED", {})
    DatasetCatalog.register_coco("conv_val", coco_files[1], coco_files[0])
    cfg = default_cfg.clone()
    for convention in ("plus_one", "continuous"):
        (ds,) = build_dataset(
            ("conv_val",), None, load_catalog(cfg), False, box_convention=convention
        )
        assert ds.box_convention == convention
        assert ds.get_groundtruth(0).convention == convention
