"""DATASETS.KEEP_EMPTY_IMAGES: background-only images stay in training and train as negatives."""

from __future__ import annotations

from pathlib import Path

import torch

from fcos_core.config.paths_catalog import DatasetCatalog
from fcos_core.data.build import make_data_loader
from fcos_core.data.collate_batch import BatchCollator
from fcos_core.engine.defaults import load_config
from fcos_core.modeling.detector import build_detection_model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "engine"


def _cfg(name: str, keep: bool):
    return load_config(str(FIXTURES / "tiny_fcos.yaml"), [
        "DATASETS.TRAIN", f'("{name}",)', "DATASETS.TEST", "()", "MODEL.FCOS.NUM_CLASSES", "4",
        "DATASETS.KEEP_EMPTY_IMAGES", str(keep), "DATALOADER.NUM_WORKERS", "0",
        "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.ASPECT_RATIO_GROUPING", "False",
    ])  # fmt: skip


def _register(coco_writer, name: str) -> None:
    coco_writer.add_image(1, boxes=[(4, 4, 20, 20, 3)])
    coco_writer.add_image(2, boxes=[(10, 8, 30, 24, 7)])
    coco_writer.add_image(3)
    coco_writer.add_image(4)
    DatasetCatalog.register_coco(name, coco_writer.image_dir, coco_writer.write(f"{name}.json"))


def test_switch_keeps_images_without_boxes(coco_writer):
    _register(coco_writer, "keep_empty_switch")
    default = make_data_loader(_cfg("keep_empty_switch", keep=False), is_train=True)
    kept = make_data_loader(_cfg("keep_empty_switch", keep=True), is_train=True)
    assert len(default.dataset) == 2 and len(kept.dataset) == 4
    empty = [i for i in range(4) if len(kept.dataset.get_groundtruth(i)) == 0]
    assert [kept.dataset.get_img_info(i)["id"] for i in empty] == [3, 4]


def test_a_batch_of_only_empty_images_trains(coco_writer):
    _register(coco_writer, "keep_empty_batch")
    cfg = _cfg("keep_empty_batch", keep=True)
    dataset = make_data_loader(cfg, is_train=True).dataset
    empty = [i for i in range(len(dataset)) if len(dataset.get_groundtruth(i)) == 0]
    images, targets, _ = BatchCollator(cfg.DATALOADER.SIZE_DIVISIBILITY)(
        [dataset[i] for i in empty]
    )
    assert all(len(t) == 0 for t in targets) and len(targets) == 2
    torch.manual_seed(0)
    model = build_detection_model(cfg).train()
    losses = model(images, list(targets))
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_cls"] > 0
    assert losses["loss_reg"].item() == 0.0 and losses["loss_centerness"].item() == 0.0
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
