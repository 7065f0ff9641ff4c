"""The quickstart (``make quickstart``): synthetic data -> train -> COCO AP -> pictures.

Everything lands in cfg.OUTPUT_DIR (``output/quickstart``): log.txt, metrics.json, config.yml,
checkpoints with model_final.pth, inference/shapes_val/ (predictions.pth, bbox.json,
coco_results.json), loss_curve.png and val_predictions/*.jpg.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import cv2
from yacs.config import CfgNode

from fcos_core.data.build import build_dataset, dataset_entry, load_catalog
from fcos_core.engine.event_writer import METRICS_FILE, read_metrics
from fcos_core.engine.inference import PREDICTIONS_FILE, load_predictions
from fcos_core.engine.launcher import run_test, train
from fcos_core.utils.timer import get_time_str
from fcos_core.utils.visualize import draw_detections, plot_loss_curve, select_detections

logger = logging.getLogger(__name__)

NUM_VIS_IMAGES = 6
VIS_SCORE_THRESHOLD = 0.5


def prepare_data(cfg: CfgNode) -> float:
    """Generate (or find) the synthetic splits named in the config; returns seconds taken."""
    start = time.time()
    catalog = load_catalog(cfg)
    for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        dataset_entry(catalog, name)
    return time.time() - start


def save_visualizations(
    cfg: CfgNode, dataset: Any, folder: str, num_images: int = NUM_VIS_IMAGES
) -> list[str]:
    """Draw the saved predictions on the first ``num_images`` images of ``dataset``."""
    predictions = load_predictions(os.path.join(folder, PREDICTIONS_FILE))
    out_dir = os.path.join(cfg.OUTPUT_DIR, "val_predictions")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for index in range(min(num_images, len(dataset))):
        image = dataset.load_image(index)  # RGB, original size
        height, width = image.shape[:2]
        dets = predictions[index].resize((width, height))
        thresholds = dets.get_field("scores").new_full(
            (len(dataset.class_names),), VIS_SCORE_THRESHOLD
        )
        drawn = draw_detections(
            cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
            select_detections(dets, thresholds),
            dataset.class_names,
        )
        path = os.path.join(out_dir, f"{index:03d}.jpg")
        cv2.imwrite(path, drawn)
        written.append(path)
    return written


def run_quickstart(cfg: CfgNode, config_name: str = "") -> dict[str, Any]:
    """Data, training (time-limited by SOLVER.MAX_MINUTES), evaluation, plots.

    ``config_name`` is recorded in the checkpoints (a later run of another config refuses them).

    Returns:
        {"bbox": COCO metrics, "output_dir", "loss_curve", "images", "seconds": {...}}.
    """
    timings = {"data": prepare_data(cfg)}
    logger.info("Synthetic data ready in %.1f s", timings["data"])
    start = time.time()
    model = train(cfg, local_rank=0, distributed=False, config_name=config_name)
    timings["train"] = time.time() - start
    start = time.time()
    results, _ = run_test(cfg, model, distributed=False)[0]
    timings["eval"] = time.time() - start
    loss_png = os.path.join(cfg.OUTPUT_DIR, "loss_curve.png")
    plot_loss_curve(read_metrics(os.path.join(cfg.OUTPUT_DIR, METRICS_FILE)), loss_png)
    folder = os.path.join(cfg.OUTPUT_DIR, "inference", cfg.DATASETS.TEST[0])
    val = build_dataset(cfg.DATASETS.TEST[:1], None, load_catalog(cfg), is_train=False)[0]
    images = save_visualizations(cfg, val, folder)
    return {
        "bbox": dict(results.results["bbox"]),
        "output_dir": cfg.OUTPUT_DIR,
        "loss_curve": loss_png,
        "images": images,
        "seconds": timings,
    }


def summary(result: dict[str, Any], wall_seconds: float) -> str:
    """The lines the quickstart prints at the end."""
    bbox = result["bbox"]
    out = result["output_dir"]
    secs = result["seconds"]
    return "\n".join([
        "",
        f"Quickstart finished in {get_time_str(wall_seconds)} "
        f"(data {secs['data']:.0f} s, training {secs['train']:.0f} s, "
        f"evaluation {secs['eval']:.0f} s).",
        f"COCO AP on the synthetic val split: AP {bbox['AP']:.3f}  AP50 {bbox['AP50']:.3f}  "
        f"AP75 {bbox['AP75']:.3f}",
        f"Outputs in {out}/:",
        "  log.txt, metrics.json, config.yml, model_final.pth",
        f"  loss curve:      {result['loss_curve']}",
        f"  val predictions: {os.path.dirname(result['images'][0]) if result['images'] else '-'}/",
        f"  detections:      {out}/inference/ (bbox.json, predictions.pth, coco_results.json)",
    ])  # fmt: skip
