"""COCO (real pycocotools) and VOC evaluation: ground truth fed back scores AP 1.0."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from fcos_core.data.datasets.coco import COCODataset
from fcos_core.data.datasets.voc import PascalVOCDataset
from fcos_core.data.evaluation import evaluate
from fcos_core.data.evaluation.voc_eval import calc_detection_voc_ap, eval_detection_voc
from fcos_core.structures.bounding_box import BoxList

CATEGORY_IDS = (3, 7, 12)  # non-contiguous json ids -> labels 1, 2, 3


def _write_coco(tmp_path) -> COCODataset:
    images, anns = [], []
    rng = np.random.default_rng(0)
    for image_id, (w, h) in zip((10, 20, 30, 40), ((96, 64), (64, 64), (80, 120), (100, 50))):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": w, "height": h})
        for _ in range(3):
            x, y = rng.uniform(0, w / 2), rng.uniform(0, h / 2)
            bw, bh = rng.uniform(8, w / 2), rng.uniform(8, h / 2)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                    "category_id": int(rng.choice(CATEGORY_IDS)),
                }
            )
    cats = [{"id": c, "name": f"shape{c}"} for c in CATEGORY_IDS]
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return COCODataset(str(ann_file), str(tmp_path), remove_images_without_annotations=False)


def _gt_as_predictions(dataset, scale: float = 0.5) -> list[BoxList]:
    """Ground truth in a resized 'network input' frame, as detections with score 1."""
    predictions = []
    for index in range(len(dataset)):
        gt = dataset.get_groundtruth(index)
        w, h = gt.size
        pred = gt.resize((round(w * scale), round(h * scale)))
        pred.add_field("scores", torch.ones(len(gt)))
        predictions.append(pred)
    return predictions


def test_coco_ground_truth_scores_ap_one(tmp_path):
    dataset = _write_coco(tmp_path)
    results, coco_results = evaluate(dataset, _gt_as_predictions(dataset), str(tmp_path))
    assert results.results["bbox"]["AP"] == pytest.approx(1.0)
    assert results.results["bbox"]["AP50"] == pytest.approx(1.0)
    written = json.loads((tmp_path / "bbox.json").read_text())
    assert len(written) == 12 and {r["category_id"] for r in written} <= set(CATEGORY_IDS)
    first_gt = dataset.coco.loadAnns(dataset.coco.getAnnIds(imgIds=[10]))[0]["bbox"]
    assert any(np.allclose(r["bbox"], first_gt, atol=1e-3) for r in coco_results)
    assert os.path.exists(tmp_path / "coco_results.json")


def test_coco_wrong_labels_lower_ap(tmp_path):
    dataset = _write_coco(tmp_path)
    predictions = _gt_as_predictions(dataset)
    labels = predictions[0].get_field("labels")
    predictions[0].add_field("labels", labels % 3 + 1)  # every box of image 0 mislabelled
    results, _ = evaluate(dataset, predictions, None)
    assert results.results["bbox"]["AP"] < 0.9


def test_coco_box_only_recall(tmp_path):
    dataset = _write_coco(tmp_path)
    results, _ = evaluate(dataset, _gt_as_predictions(dataset), None, box_only=True)
    assert results.results["box_proposal"]["AR@100"] == pytest.approx(1.0)


def test_coco_no_detections(tmp_path):
    dataset = _write_coco(tmp_path)
    empty = [BoxList(torch.zeros(0, 4), (10, 10)) for _ in range(len(dataset))]
    for e in empty:
        e.add_field("scores", torch.zeros(0))
        e.add_field("labels", torch.zeros(0, dtype=torch.int64))
    results, _ = evaluate(dataset, empty, None)
    assert results.results["bbox"]["AP"] == 0.0


VOC_XML = (
    """<annotation><size><width>{w}</width><height>{h}</height></size>{objects}</annotation>"""
)
VOC_OBJ = (
    "<object><name>{name}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin>"
    "<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
)


def _write_voc(tmp_path) -> PascalVOCDataset:
    root = tmp_path / "VOC"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    objects = {
        "a": [("cat", 0, 5, 5, 40, 30), ("dog", 0, 50, 10, 90, 60), ("cat", 1, 60, 40, 70, 50)],
        "b": [("dog", 0, 1, 1, 20, 20), ("bird", 0, 30, 30, 60, 55)],
    }
    for image_id, objs in objects.items():
        body = "".join(
            VOC_OBJ.format(name=n, d=d, x1=a, y1=b, x2=c, y2=e) for n, d, a, b, c, e in objs
        )
        (root / "Annotations" / f"{image_id}.xml").write_text(
            VOC_XML.format(w=100, h=80, objects=body)
        )
    (root / "ImageSets" / "Main" / "test.txt").write_text("a\nb\n")
    return PascalVOCDataset(str(root), "test", use_difficult=True, classes=("cat", "dog", "bird"))


def test_voc_ground_truth_scores_ap_one(tmp_path):
    dataset = _write_voc(tmp_path)
    result = evaluate(dataset, _gt_as_predictions(dataset, scale=0.8), str(tmp_path))
    assert result["map"] == pytest.approx(1.0) and result["map_area"] == pytest.approx(1.0)
    assert set(result["ap"]) == {"cat", "dog", "bird"}
    assert (tmp_path / "result.txt").read_text().startswith("mAP (VOC07 11-point): 1.0000")


def _boxlist(boxes, labels, scores=None, difficult=None, size=(100, 100)) -> BoxList:
    b = BoxList(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), size)
    b.add_field("labels", torch.tensor(labels, dtype=torch.int64))
    if scores is not None:
        b.add_field("scores", torch.tensor(scores))
    if difficult is not None:
        b.add_field("difficult", torch.tensor(difficult))
    return b


def test_voc_hand_computed_ap():
    # 2 ground truths; detections by score: hit, miss, hit -> P = [1, .5, 2/3], R = [.5, .5, 1].
    gt = _boxlist([[0, 0, 10, 10], [50, 50, 70, 70]], [1, 1], difficult=[False, False])
    pred = _boxlist(
        [[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 70, 70]], [1, 1, 1], [0.9, 0.8, 0.7]
    )
    area = eval_detection_voc([pred], [gt], use_07_metric=False)["map"]
    assert area == pytest.approx(0.5 * 1 + 0.5 * (2 / 3))
    eleven = eval_detection_voc([pred], [gt], use_07_metric=True)["map"]
    assert eleven == pytest.approx((6 * 1 + 5 * (2 / 3)) / 11)


def test_voc_difficult_and_duplicates():
    gt = _boxlist([[0, 0, 10, 10], [50, 50, 70, 70]], [1, 1], difficult=[False, True])
    # duplicate of the first box is a false positive; the hit on the difficult box is ignored
    pred = _boxlist([[0, 0, 10, 10], [50, 50, 70, 70], [0, 0, 10, 10]], [1, 1, 1], [0.9, 0.8, 0.7])
    curves = eval_detection_voc([pred], [gt], use_07_metric=False)
    assert curves["map"] == pytest.approx(1.0)  # the FP comes after recall reached 1
    pred2 = _boxlist([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1], [0.5, 0.9])  # FP ranked first
    assert eval_detection_voc([pred2], [gt], use_07_metric=False)["map"] == pytest.approx(0.5)
    assert calc_detection_voc_ap(
        np.array([1.0]), np.array([0.5]), use_07_metric=True
    ) == pytest.approx(6 / 11)


def test_unknown_dataset_type():
    with pytest.raises(NotImplementedError, match="COCODataset, PascalVOCDataset"):
        evaluate(object(), [], None)


def test_faster_coco_eval_gives_the_same_numbers(tmp_path):
    pytest.importorskip("faster_coco_eval")
    dataset = _write_coco(tmp_path)
    predictions = _gt_as_predictions(dataset)
    rng = torch.Generator().manual_seed(0)
    for p in predictions:  # imperfect detections, so the numbers are not all 1.0
        p.bbox += torch.randn(p.bbox.shape, generator=rng) * 3
        p.add_field("scores", torch.rand(len(p), generator=rng))
    ref, _ = evaluate(dataset, predictions, None)
    fast, _ = evaluate(dataset, predictions, None, coco_backend="faster_coco_eval")
    assert 0.0 < ref.results["bbox"]["AP"] < 1.0
    for metric, value in ref.results["bbox"].items():
        assert fast.results["bbox"][metric] == pytest.approx(value, abs=1e-6), metric
