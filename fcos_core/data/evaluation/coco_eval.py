"""COCO-style evaluation of detections with pycocotools (or faster-coco-eval).

Predictions arrive in the network-input frame with contiguous labels 1..C; they are resized to
each image's original size and mapped back to json category ids before scoring.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections import OrderedDict
from typing import Any

import numpy as np

from fcos_core.config.checks import ConfigError, one_of_message
from fcos_core.structures.bounding_box import BoxList
from fcos_core.utils.extras import require

logger = logging.getLogger(__name__)

COCO_BACKENDS = ("pycocotools", "faster_coco_eval")
# Names of COCOeval.stats[0:6] for bbox.
BBOX_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
TABLE_COLUMNS = 3


def prepare_for_coco_detection(predictions: list[BoxList], dataset: Any) -> list[dict[str, Any]]:
    """Detections -> COCO result dicts (``image_id``, ``category_id``, xywh ``bbox``, ``score``).

    Args:
        predictions: one BoxList per dataset index (fields "scores", "labels").
        dataset: COCO-style dataset (``id_to_img_map``, ``get_img_info``,
            ``contiguous_category_id_to_json_id``).
    """
    results = []
    for index, prediction in enumerate(predictions):
        if len(prediction) == 0:
            continue
        info = dataset.get_img_info(index)
        prediction = prediction.resize((info["width"], info["height"])).convert("xywh")
        boxes = prediction.bbox.tolist()
        scores = prediction.get_field("scores").tolist()
        labels = prediction.get_field("labels").tolist()
        image_id = dataset.id_to_img_map[index]
        to_json = dataset.contiguous_category_id_to_json_id
        results.extend(
            {"image_id": image_id, "category_id": to_json[int(label)], "bbox": box, "score": score}
            for box, score, label in zip(boxes, scores, labels)
        )
    return results


def _backend_classes(backend: str) -> tuple[Any, Any]:
    """(COCO class, COCOeval class) of ``backend``."""
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    if backend == "faster_coco_eval":
        module = require("faster_coco_eval", "TEST.COCO_EVAL_BACKEND faster_coco_eval")
        return module.COCO, module.COCOeval_faster
    raise ConfigError(one_of_message("COCO eval backend", backend, COCO_BACKENDS))


def evaluate_predictions_on_coco(
    coco_gt: Any,
    coco_results: list[dict[str, Any]],
    iou_type: str = "bbox",
    backend: str = "pycocotools",
) -> Any:
    """Run evaluate/accumulate/summarize; the summary table goes to the log.

    Args:
        coco_gt: pycocotools ``COCO`` of the ground truth.
        coco_results: result dicts (non-empty).

    Returns:
        the COCOeval object (``stats``, ``eval["precision"]``).
    """
    coco_cls, eval_cls = _backend_classes(backend)
    if backend != "pycocotools":
        coco_gt = coco_cls(coco_gt.dataset)
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        coco_dt = coco_gt.loadRes(coco_results)
        coco_eval = eval_cls(coco_gt, coco_dt, iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    logger.info("COCO evaluation (%s, %s):\n%s", iou_type, backend, _summary_lines(summary))
    return coco_eval


def _summary_lines(summary: io.StringIO) -> str:
    return "\n".join(line for line in summary.getvalue().splitlines() if "Average" in line)


def per_class_ap(coco_eval: Any) -> np.ndarray:
    """AP@[.5:.95] of each category (area all, maxDets 100); nan for classes without GT.

    Returns:
        float array [K] in the order of ``coco_eval.params.catIds``.
    """
    precision = coco_eval.eval["precision"]  # (T, R, K, A, M)
    aps = []
    for k in range(precision.shape[2]):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        aps.append(float(np.mean(p)) if p.size else float("nan"))
    return np.array(aps)


def format_per_class_table(names: list[str], aps: np.ndarray) -> str:
    """A text table of ``category | AP`` pairs, ``TABLE_COLUMNS`` pairs per row."""
    cells = [(name, "nan" if np.isnan(ap) else f"{100 * ap:.2f}") for name, ap in zip(names, aps)]
    width = max([len(n) for n, _ in cells] + [len("category")])
    header = " | ".join(
        f"{'category':<{width}} | {'AP':>6}" for _ in range(min(TABLE_COLUMNS, len(cells)))
    )
    rows = [header, "-" * len(header)]
    for start in range(0, len(cells), TABLE_COLUMNS):
        chunk = cells[start : start + TABLE_COLUMNS]
        rows.append(" | ".join(f"{n:<{width}} | {ap:>6}" for n, ap in chunk))
    return "\n".join(rows)


class COCOResults:
    """Metrics per IoU type: ``results["bbox"]["AP"]`` etc. (fractions in [0, 1], -1 = absent)."""

    METRICS = {
        "bbox": BBOX_METRICS,
        "box_proposal": (
            "AR@100",
            "ARs@100",
            "ARm@100",
            "ARl@100",
            "AR@1000",
            "ARs@1000",
            "ARm@1000",
            "ARl@1000",
        ),
    }

    def __init__(self, *iou_types: str) -> None:
        unknown = [t for t in iou_types if t not in self.METRICS]
        if unknown:
            raise ValueError(f"iou_types must be among {sorted(self.METRICS)}, got {unknown}")
        self.results: OrderedDict[str, OrderedDict[str, float]] = OrderedDict(
            (t, OrderedDict((m, -1.0) for m in self.METRICS[t])) for t in iou_types
        )

    def update(self, coco_eval: Any, iou_type: str = "bbox") -> None:
        """Copy ``coco_eval.stats`` into ``results[iou_type]``."""
        for metric, value in zip(self.METRICS[iou_type], coco_eval.stats):
            self.results[iou_type][metric] = float(value)

    def __repr__(self) -> str:
        return json.dumps(self.results)


def check_expected_results(
    results: COCOResults, expected_results: list[list[Any]], sigma_tol: float
) -> bool:
    """Compare against ``[[dataset, iou_type, metric, mean, std], ...]`` (or 4 entries, std 0).

    Returns:
        True when every metric lies within ``mean +- sigma_tol * std``; failures are logged.
    """
    ok = True
    for entry in expected_results:
        _, iou_type, metric, mean = entry[:4]
        std = entry[4] if len(entry) > 4 else 0.0
        actual = results.results[iou_type][metric]
        lo, hi = mean - sigma_tol * std, mean + sigma_tol * std
        passed = lo <= actual <= hi
        ok &= passed
        log = logger.info if passed else logger.error
        log(
            "%s %s %s = %.4f, expected %.4f in [%.4f, %.4f]: %s",
            entry[0],
            iou_type,
            metric,
            actual,
            mean,
            lo,
            hi,
            "PASS" if passed else "FAIL",
        )
    return ok


def _evaluate_bbox(
    dataset: Any, predictions: list[BoxList], output_folder: str | None, backend: str
) -> tuple[Any, list[dict[str, Any]]]:
    coco_results = prepare_for_coco_detection(predictions, dataset)
    if output_folder:
        with open(os.path.join(output_folder, "bbox.json"), "w") as f:
            json.dump(coco_results, f)
    if not coco_results:
        logger.warning("No detections at all: every bbox metric is 0")
        return None, coco_results
    coco_eval = evaluate_predictions_on_coco(dataset.coco, coco_results, "bbox", backend)
    names = [dataset.coco.cats[c]["name"] for c in coco_eval.params.catIds]
    logger.info("Per-category bbox AP:\n%s", format_per_class_table(names, per_class_ap(coco_eval)))
    return coco_eval, coco_results


def do_coco_evaluation(
    dataset: Any,
    predictions: list[BoxList],
    output_folder: str | None = None,
    box_only: bool = False,
    iou_types: tuple[str, ...] = ("bbox",),
    expected_results: list[list[Any]] = (),
    expected_results_sigma_tol: float = 4,
    coco_backend: str = "pycocotools",
    **_: Any,
) -> tuple[COCOResults, list[dict[str, Any]]]:
    """Evaluate detections (or, with ``box_only``, proposals' recall) on a COCO-style dataset.

    Writes ``bbox.json`` and ``coco_results.json`` into ``output_folder`` when given.

    Returns:
        (COCOResults, the COCO result dicts).
    """
    if box_only:
        from fcos_core.data.evaluation.box_proposals import evaluate_box_proposals

        results = COCOResults("box_proposal")
        results.results["box_proposal"].update(evaluate_box_proposals(predictions, dataset))
        logger.info("Proposal recall: %s", results)
        return results, []
    results = COCOResults(*iou_types)
    coco_results: list[dict[str, Any]] = []
    if "bbox" in iou_types:
        coco_eval, coco_results = _evaluate_bbox(dataset, predictions, output_folder, coco_backend)
        if coco_eval is None:
            results.results["bbox"].update((m, 0.0) for m in BBOX_METRICS)
        else:
            results.update(coco_eval, "bbox")
    logger.info("COCO results: %s", results)
    check_expected_results(results, list(expected_results), expected_results_sigma_tol)
    if output_folder:
        with open(os.path.join(output_folder, "coco_results.json"), "w") as f:
            json.dump(results.results, f, indent=2)
    return results, coco_results
