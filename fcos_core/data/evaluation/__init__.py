"""Evaluation of detections: dispatch on the dataset type (COCO-style or VOC-style)."""

from __future__ import annotations

from typing import Any

from fcos_core.data.evaluation.coco_eval import do_coco_evaluation
from fcos_core.data.evaluation.voc_eval import do_voc_evaluation
from fcos_core.structures.bounding_box import BoxList

# Dataset class name -> evaluator. Subclasses are found through their MRO.
EVALUATORS = {
    "COCODataset": do_coco_evaluation,
    "PascalVOCDataset": do_voc_evaluation,
}


def evaluate(
    dataset: Any, predictions: list[BoxList], output_folder: str | None, **kwargs: Any
) -> Any:
    """Evaluate ``predictions`` (one BoxList per dataset index) on ``dataset``.

    Args:
        dataset: a COCODataset or PascalVOCDataset (or a subclass).
        predictions: detections in the network-input frame, fields "scores" and "labels".
        output_folder: where result files go (None: nowhere).
        **kwargs: box_only, iou_types, expected_results, expected_results_sigma_tol, coco_backend.

    Returns:
        the evaluator's result (COCOResults and result dicts for COCO; a dict for VOC).

    Raises:
        NotImplementedError: no evaluator for this dataset type.
    """
    for cls in type(dataset).__mro__:
        if cls.__name__ in EVALUATORS:
            return EVALUATORS[cls.__name__](
                dataset=dataset, predictions=predictions, output_folder=output_folder, **kwargs
            )
    raise NotImplementedError(
        f"no evaluator for dataset type {type(dataset).__name__}; supported: "
        f"{', '.join(EVALUATORS)} and their subclasses"
    )
