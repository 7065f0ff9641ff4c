"""Sliced inference (TEST.SLICE): tile grid, exact mapping of tile boxes, merge and cap.

The mapping tests use ``BlobDetector`` (tests/modeling/blob_detector.py), a deterministic
stand-in whose output on any crop is known: a box found in tile k must equal the box found on
the whole image, in both box conventions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.config.checks import ConfigError
from fcos_core.data.transforms import build_transforms
from fcos_core.engine.inference import build_test_time_augmentation
from fcos_core.modeling.fcos import inference_core
from fcos_core.modeling.fcos.slicing import (
    SlicedInference,
    Window,
    tile_starts,
    tile_windows,
)
from fcos_core.structures import BoxList
from fcos_core.structures.boxlist_ops import cat_boxlist
from tests.modeling.blob_detector import (
    RED,
    WHITE,
    BlobDetector,
    Rect,
    box_set,
    draw,
    rect_to_box,
    scatter_rects,
)

CONVENTIONS = ("plus_one", "continuous")


def slice_cfg(convention: str, tile: int, overlap: int, test_size: int, *opts: str):
    cfg = default_cfg.clone()
    cfg.merge_from_list([
        "MODEL.BOX_CONVENTION", convention, "INPUT.MIN_SIZE_TEST", test_size,
        "INPUT.MAX_SIZE_TEST", 10000, "TEST.SLICE.ENABLED", True, "TEST.SLICE.TILE_SIZE", tile,
        "TEST.SLICE.OVERLAP", overlap, "TEST.SLICE.INCLUDE_FULL_IMAGE", False,
        "TEST.SLICE.TILES_PER_BATCH", 5, *opts,
    ])  # fmt: skip
    return cfg


def native(image: np.ndarray, cfg) -> torch.Tensor:
    """``image`` through the test transforms of ``cfg`` at its own size (no resize)."""
    native_cfg = cfg.clone()
    native_cfg.INPUT.MIN_SIZE_TEST = min(image.shape[:2])
    return build_transforms(native_cfg, is_train=False)(image, None)[0]


def colors_of(rects: list[Rect]) -> list[tuple]:
    return [WHITE if i % 2 else RED for i in range(len(rects))]


def label_of(color: tuple) -> int:
    return 2 if color == WHITE else 1


def part_in(rect: Rect, window: Window) -> Rect | None:
    x0, y0 = max(rect[0], window.x0), max(rect[1], window.y0)
    x1, y1 = min(rect[2], window.x1), min(rect[3], window.y1)
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


# ------------------------------------------------------------------ tile geometry
def test_tile_starts_examples():
    assert tile_starts(1024, 256, 64) == [0, 192, 384, 576, 768]
    assert tile_starts(1000, 256, 64) == [0, 192, 384, 576, 744]  # last one on the border
    assert tile_starts(256, 256, 64) == [0]
    assert tile_starts(100, 256, 64) == [0]  # shorter than a tile: one tile
    assert tile_starts(257, 256, 0) == [0, 1]


@pytest.mark.parametrize("seed", range(6))
def test_tiles_cover_the_axis_with_the_configured_overlap(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        tile = int(rng.integers(1, 80))
        overlap = int(rng.integers(0, tile))
        length = int(rng.integers(tile + 1, 600))
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == length  # edge tiles align to the border
        shared = [a + tile - b for a, b in zip(starts, starts[1:])]
        assert all(s == overlap for s in shared[:-1]) and shared[-1] >= overlap
        assert shared[-1] < tile  # no tile repeated
        assert (len(starts) - 2) * (tile - overlap) + tile < length  # no tile fewer would do


def test_windows_cover_the_image_and_small_images_are_one_tile():
    windows = tile_windows(300, 200, 128, 32)
    covered = np.zeros((300, 200), dtype=int)
    for w in windows:
        assert w.size == (128, 128)
        covered[w.y0 : w.y1, w.x0 : w.x1] += 1
    assert covered.min() == 1 and len(windows) == 2 * 3
    assert tile_windows(50, 90, 128, 32) == [Window(0, 0, 90, 50)]
    assert tile_windows(50, 300, 128, 32) == [Window(x, 0, x + 128, 50) for x in (0, 96, 172)]


@pytest.mark.parametrize(
    ("tile", "overlap", "key"),
    [(64, 64, "TEST.SLICE.OVERLAP"), (64, -1, "TEST.SLICE.OVERLAP"), (0, 0, "TILE_SIZE")],
)
def test_bad_tile_geometry_names_the_key(tile, overlap, key):
    cfg = slice_cfg("continuous", tile, overlap, 64)
    with pytest.raises(ConfigError, match=key):
        SlicedInference.from_config(cfg)
    with pytest.raises(ConfigError, match="TILES_PER_BATCH"):
        SlicedInference.from_config(
            slice_cfg("continuous", 64, 8, 64, "TEST.SLICE.TILES_PER_BATCH", 0)
        )


def test_slicing_with_test_time_augmentation_is_refused():
    cfg = slice_cfg("continuous", 64, 8, 64, "TEST.BBOX_AUG.ENABLED", True)
    with pytest.raises(ConfigError, match="TEST.SLICE.ENABLED and TEST.BBOX_AUG.ENABLED"):
        build_test_time_augmentation(cfg)
    assert isinstance(
        build_test_time_augmentation(slice_cfg("continuous", 64, 8, 64)), SlicedInference
    )


# ------------------------------------------------------------------ exact mapping
def _scene(height: int, width: int, count: int, sides: tuple[int, int], seed: int):
    rects = scatter_rects(height, width, count, sides, seed)
    colors = colors_of(rects)
    return draw(height, width, rects, colors), rects, [label_of(c) for c in colors]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_a_box_found_in_a_tile_equals_the_box_found_on_the_whole_image(convention):
    cfg = slice_cfg(convention, 64, 24, 64)  # tiles at the image's own scale
    image, rects, labels = _scene(150, 230, 25, (1, 20), seed=1)
    slicer = SlicedInference.from_config(cfg)
    model = BlobDetector(slicer.transforms, convention)
    whole = model.detect(native(image, cfg))
    assert box_set(whole) == {(*rect_to_box(r, convention), k) for r, k in zip(rects, labels)}
    whole_scores = dict(zip(map(tuple, whole.bbox.tolist()), whole.get_field("scores").tolist()))
    windows = tile_windows(150, 230, 64, 24)
    per_tile = slicer.tile_detections(model, [image])[0]
    assert model.input_sizes[1:] == [(64, 64)] * len(windows)
    assert len(windows) == 6 * 4
    complete = set()
    for det, window in zip(per_tile, windows, strict=True):
        assert det.size == (230, 150) and det.convention == convention
        parts = [(part_in(r, window), k) for r, k in zip(rects, labels)]
        expected = {(*rect_to_box(p, convention), k) for p, k in parts if p is not None}
        assert box_set(det) == expected  # whole objects and the parts a tile edge cuts
        for box, score in zip(det.bbox.tolist(), det.get_field("scores").tolist()):
            if tuple(box) in whole_scores:  # a whole object: same box and score
                assert score == whole_scores[tuple(box)]
                complete.add(tuple(box))
    assert complete == set(whole_scores)  # sides <= OVERLAP: every object whole in some tile


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_tiles_enlarged_by_the_test_transforms_map_back(convention):
    cfg = slice_cfg(convention, 64, 24, 128)  # each 64 px tile becomes 128 px
    image, rects, labels = _scene(150, 230, 25, (1, 20), seed=2)
    slicer = SlicedInference.from_config(cfg)
    model = BlobDetector(slicer.transforms, convention)
    per_tile = slicer.tile_detections(model, [image])[0]
    assert set(model.input_sizes) == {(128, 128)}
    # "continuous" scales exactly; "plus_one" boxes end half a pixel further, as any plus_one
    # detection resized by BoxList.resize does (the original's plain scaling, whole images too)
    end = 0.5 if convention == "plus_one" else 0.0
    for det, window in zip(per_tile, tile_windows(150, 230, 64, 24), strict=True):
        parts = [(part_in(r, window), k) for r, k in zip(rects, labels)]
        expected = {
            (x1, y1, x2 + end, y2 + end, k)
            for p, k in parts
            if p is not None
            for x1, y1, x2, y2 in [rect_to_box(p, convention)]
        }
        assert box_set(det) == expected


def test_detections_come_back_in_the_frame_of_plain_inference():
    cfg = slice_cfg("continuous", 64, 24, 64, "TEST.SLICE.INCLUDE_FULL_IMAGE", True)
    image, _, _ = _scene(150, 230, 10, (4, 20), seed=3)
    slicer = SlicedInference.from_config(cfg)
    model = BlobDetector(slicer.transforms, "continuous")
    (framed,) = slicer(model, [image])
    assert framed.size == (98, 64)  # 230 x 150 at MIN_SIZE_TEST 64, as the test transform
    assert model.input_sizes[-1] == (64, 98)  # the whole-image pass, at the test size
    original = slicer.detect(model, image)
    assert len(original) >= 10
    back = framed.resize(original.size)
    torch.testing.assert_close(back.bbox, original.bbox, atol=1e-4, rtol=0)
    assert torch.equal(back.get_field("scores"), original.get_field("scores"))
    with pytest.raises(TypeError, match="TEST.SLICE"):
        slicer(model, [native(image, cfg)])


# ------------------------------------------------------------------ merge and cap
class TwoLabelDetector(BlobDetector):
    """Reports every blob twice: with its label and, at half the score, with the other one."""

    def detect(self, tensor: torch.Tensor) -> BoxList:
        det = super().detect(tensor)
        other = det.copy_with_fields(["scores", "labels"])
        other.add_field("labels", 3 - det.get_field("labels"))
        other.add_field("scores", det.get_field("scores") / 2)
        return cat_boxlist([det, other])


def _whole_in_every_tile(rects, labels, windows):
    """The objects no tile edge cuts (each tile holding part of one holds all of it)."""
    kept = [
        (r, k) for r, k in zip(rects, labels) if all(part_in(r, w) in (None, r) for w in windows)
    ]
    return [r for r, _ in kept], [k for _, k in kept]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_duplicates_of_overlapping_tiles_are_merged_by_the_core_nms(convention, monkeypatch):
    cfg = slice_cfg(convention, 64, 32, 64)
    windows = tile_windows(160, 224, 64, 32)
    image, rects, labels = _scene(160, 224, 40, (2, 12), seed=4)
    rects, labels = _whole_in_every_tile(rects, labels, windows)
    image = draw(160, 224, rects, [WHITE if k == 2 else RED for k in labels])
    calls = []
    real_nms = inference_core.class_aware_nms
    monkeypatch.setattr(inference_core, "class_aware_nms",
                        lambda *a, **k: calls.append(len(a[0])) or real_nms(*a, **k))  # fmt: skip
    slicer = SlicedInference.from_config(cfg)
    model = TwoLabelDetector(slicer.transforms, convention)
    candidates = sum(len(d) for d in slicer.tile_detections(model, [image])[0])
    merged = slicer.detect(model, image)
    seen = sum(sum(part_in(r, w) is not None for w in windows) for r in rects)
    assert len(rects) >= 8 and seen > len(rects)  # objects in overlaps are found several times
    assert calls == [candidates] == [2 * seen]
    # one box per object and label: same-label duplicates go, the other label stays
    expected = {(*rect_to_box(r, convention), k) for r, k in zip(rects, labels)}
    expected |= {(*rect_to_box(r, convention), 3 - k) for r, k in zip(rects, labels)}
    assert len(merged) == len(expected) and box_set(merged) == expected


@pytest.mark.parametrize("ties", ["keep", "cut"])
def test_the_per_image_cap_holds_after_the_merge(ties):
    cfg = slice_cfg("plus_one", 64, 24, 64, "TEST.DETECTIONS_PER_IMG", 7,
                    "TEST.DETECTIONS_PER_IMG_TIES", ties)  # fmt: skip
    image, rects, _ = _scene(150, 230, 30, (3, 20), seed=5)
    slicer = SlicedInference.from_config(cfg)
    model = BlobDetector(slicer.transforms, "plus_one")
    whole = model.detect(native(image, cfg))
    merged = slicer.detect(model, image)
    best = sorted(whole.get_field("scores").tolist(), reverse=True)[:7]
    assert len(merged) == 7 and merged.get_field("scores").tolist() == best


# ------------------------------------------------------------------ small objects
def test_slicing_finds_small_objects_the_whole_image_pass_misses():
    """A large image with 5-9 px objects, a detector blind below 3 input pixels (as a stride):
    shrunk 4x to the test size every object is missed; 128 px tiles at the image's own scale
    find every object exactly, and the whole-image pass adds nothing wrong."""
    cfg = slice_cfg("continuous", 128, 32, 128, "TEST.SLICE.INCLUDE_FULL_IMAGE", True)
    image, rects, labels = _scene(512, 512, 40, (5, 9), seed=6)
    slicer = SlicedInference.from_config(cfg)
    model = BlobDetector(slicer.transforms, "continuous", min_side=3)
    (full,) = slicer.run_model(model, [image], "cpu")
    assert model.input_sizes == [(128, 128)] and len(full) == 0
    merged = slicer.detect(model, image)
    expected = {(*rect_to_box(r, "continuous"), k) for r, k in zip(rects, labels)}
    assert box_set(merged) >= expected  # every object, exactly
    assert len(box_set(merged) - expected) <= len(rects)  # plus at most a cut part per object
