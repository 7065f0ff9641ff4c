"""Dataset pre-flight report: counts from the annotations, level assignment, warnings, plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fcos_core.config.paths_catalog import DatasetCatalog
from fcos_core.data.analysis import boxes_per_level, check, collect_stats, load_dataset
from fcos_core.engine import cli
from fcos_core.engine.defaults import load_config

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "engine"


def _cfg(*opts):
    base = ["MODEL.BACKBONE.CONV_BODY", "R-18-FPN-RETINANET", "MODEL.FCOS.NUM_CLASSES", "4",
            "INPUT.MIN_SIZE_TRAIN", "(96,)",
            "INPUT.MAX_SIZE_TRAIN", "1000", "SOLVER.MAX_ITER", "1000"]  # fmt: skip
    return load_config(None, base + list(opts))


def _planted(coco_writer, name: str, small: bool):
    """4 images 64x48 (resized x2 to 128x96); image 3 has no box, image 4 a crowd box."""
    side = 3 if small else 30  # 6 px / 60 px after the x2 resize
    for image_id in (1, 2):
        coco_writer.add_image(image_id, boxes=[(2, 2, side, side, 3), (10, 5, 40, 40, 7),
                                               (1, 1, side, side + 1, 3)])  # fmt: skip
    coco_writer.add_image(3)
    coco_writer.add_image(4, boxes=[(0, 0, 20, 10, 10), (5, 5, 30, 30, 10, 1)])
    ann = coco_writer.write(f"{name}.json")
    DatasetCatalog.register_coco(name, coco_writer.image_dir, ann)


def test_counts_and_levels_from_a_custom_json(coco_writer):
    _planted(coco_writer, "analysis_custom", small=False)
    cfg = _cfg()
    stats = collect_stats(cfg, load_dataset(cfg, "analysis_custom"), "analysis_custom")
    assert (stats.num_images, stats.num_boxes, stats.empty_images, stats.crowd_boxes) == (
        4,
        7,
        1,
        1,
    )
    assert stats.class_names == ["cat", "dog", "cow"]
    assert np.bincount(stats.labels, minlength=4).tolist() == [0, 4, 2, 1]
    # after x2: cat 60x60 / 60x62 -> half long 30, 31 (P3); dog 80x80 -> 40 (P3); cow 40x20 -> 20
    np.testing.assert_allclose(sorted(stats.sides.max(axis=1) / 2), [20, 30, 30, 31, 31, 40, 40])
    assert boxes_per_level(cfg, stats) == [7, 0, 0, 0, 0]
    # x8.33: cat 30x30 -> half long 125 (P4), 30x31 -> 129 (P5), dog 166 (P5), cow 83 (P4)
    bigger = _cfg("INPUT.MIN_SIZE_TRAIN", "(400,)")
    big = collect_stats(bigger, load_dataset(bigger, "analysis_custom"), "analysis_custom")
    assert boxes_per_level(bigger, big) == [0, 3, 4, 0, 0]
    warnings = check(cfg, stats)
    assert any("1 images (25%) have no boxes" in w and "DATASETS.KEEP_EMPTY_IMAGES" in w
               for w in warnings)  # fmt: skip
    assert not any("under 8 px" in w for w in warnings)


def test_small_box_and_schedule_warnings_fire(coco_writer):
    _planted(coco_writer, "analysis_small", small=True)
    cfg = _cfg("SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2")
    warnings = check(cfg, collect_stats(cfg, load_dataset(cfg, "analysis_small"), "x"))
    small = [w for w in warnings if "under 8 px" in w]
    # 4 of 7 boxes (the cats, 6x6 and 6x8 after resizing) are under the stride-8 level
    assert small == [
        "57% of boxes are under 8 px (the smallest FPN stride) after resizing to 96: raise "
        "INPUT.MIN_SIZE_TRAIN (and INPUT.MIN_SIZE_TEST), or crop/tile the images"
    ]
    assert any(w.startswith("SOLVER.MAX_ITER 2 x SOLVER.IMS_PER_BATCH 2 passes over the 3 "
                            "training images only 1.3 times") for w in warnings)  # fmt: skip
    mismatch = check(_cfg("MODEL.FCOS.NUM_CLASSES", "81"),
                     collect_stats(cfg, load_dataset(cfg, "analysis_small"), "x"))  # fmt: skip
    assert any("set MODEL.FCOS.NUM_CLASSES 4" in w for w in mismatch)


def test_analyze_data_command_on_the_synthetic_set(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FCOS_TINY_SHAPES_DIR", str(tmp_path / "tiny"))
    out = tmp_path / "analysis"
    cli.main(["analyze-data", "--config-file", str(FIXTURES / "tiny_fcos.yaml"),
              "--output-dir", str(out), "DATASETS.REGISTER",
              f'("{FIXTURES / "tiny_shapes_register.py"}",)'])  # fmt: skip
    printed = capsys.readouterr().out
    assert printed.startswith("tiny_shapes_train: 16 images, ")
    assert "boxes per FPN level after resizing to 64: P3 " in printed
    report = json.loads((out / "report.json").read_text())
    assert report[0]["dataset"] == "tiny_shapes_train" and report[0]["images"] == 16
    assert sum(report[0]["boxes_per_level"]) == report[0]["boxes"] > 0
    png = out / "tiny_shapes_train.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
