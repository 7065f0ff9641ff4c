"""Run a detector over a test loader, gather the detections of all processes, evaluate them."""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm import tqdm
from yacs.config import CfgNode

from fcos_core.data.evaluation import evaluate
from fcos_core.structures.bounding_box import BoxList
from fcos_core.structures.box_convention import DEFAULT_BOX_CONVENTION
from fcos_core.structures.image_list import ImageList
from fcos_core.utils.comm import all_gather, get_world_size, is_main_process, synchronize
from fcos_core.utils.env import resolve_device
from fcos_core.utils.safe_io import load_pth
from fcos_core.utils.timer import Timer, get_time_str

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.pth"


# Test-time augmentation (TEST.BBOX_AUG) or sliced inference (TEST.SLICE): (model, original
# images of a batch, device) -> detections in the frame of plain inference.
TestTimeAugmentation = Callable[[nn.Module, Any, torch.device], list[BoxList]]


def build_test_time_augmentation(cfg: CfgNode) -> TestTimeAugmentation | None:
    """What ``inference`` runs on the original images: TEST.BBOX_AUG's test-time augmentation,
    TEST.SLICE's sliced inference (both at once is a ConfigError), or None when both are off."""
    if cfg.TEST.SLICE.ENABLED:
        from fcos_core.modeling.fcos.slicing import SlicedInference

        return SlicedInference.from_config(cfg)  # refuses TEST.BBOX_AUG too
    if not cfg.TEST.BBOX_AUG.ENABLED:
        return None
    from fcos_core.modeling.fcos.tta import FCOSTestTimeAugmentation

    return FCOSTestTimeAugmentation.from_config(cfg)


def compute_on_dataset(
    model: nn.Module, data_loader: Any, device: torch.device, timer: Timer | None = None,
    tta: TestTimeAugmentation | None = None,
) -> dict[int, BoxList]:  # fmt: skip
    """Detections of this process's share of the dataset, on the CPU, keyed by dataset index.

    Without ``tta`` the loader yields ImageLists of transformed images; with it (TEST.BBOX_AUG
    or TEST.SLICE) the original images, which ``tta`` transforms once per pass or tile (see
    modeling/fcos/tta.py and slicing.py).
    """
    model.eval()
    results: dict[int, BoxList] = {}
    for images, _, image_ids in tqdm(data_loader, disable=not is_main_process(), desc="inference"):
        with torch.no_grad():
            if timer is not None:
                timer.tic()
            if tta is None and not isinstance(images, ImageList):
                raise TypeError(
                    "inference: the test loader yields untransformed images (TEST.BBOX_AUG."
                    "ENABLED or TEST.SLICE.ENABLED is on) but no test-time augmentation or "
                    "sliced inference was given; pass "
                    "tta=build_test_time_augmentation(cfg)"
                )
            outputs = tta(model, images, device) if tta else model(images.to(device))
            if timer is not None:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                timer.toc()
        results.update({int(i): o.to("cpu") for i, o in zip(image_ids, outputs)})
    return results


def gather_predictions(
    predictions_per_process: dict[int, BoxList], num_images: int
) -> list[BoxList] | None:
    """Merge every process's detections (rank 0 gets the list in index order; others None)."""
    all_predictions = all_gather(predictions_per_process)
    if not is_main_process():
        return None
    merged: dict[int, BoxList] = {}
    for part in all_predictions:
        merged.update(part)
    missing = sorted(set(range(num_images)) - set(merged))
    if missing:
        raise RuntimeError(
            f"{len(missing)} of {num_images} images have no detections after gathering from "
            f"{len(all_predictions)} process(es), e.g. indices {missing[:10]}"
        )
    return [merged[i] for i in range(num_images)]


def save_predictions(predictions: Sequence[BoxList], path: str) -> None:
    """Write detections as plain dicts of tensors (loadable with ``weights_only=True``)."""
    torch.save([
        {"bbox": p.bbox, "size": tuple(p.size), "mode": p.mode, "convention": p.convention,
         "fields": {k: p.get_field(k) for k in p.fields()}}
        for p in predictions
    ], path)  # fmt: skip


def load_predictions(path: str) -> list[BoxList]:
    """Read a file written by :func:`save_predictions`."""
    predictions = []
    for entry in load_pth(path):
        convention = entry.get("convention", DEFAULT_BOX_CONVENTION)  # older files: none
        boxlist = BoxList(entry["bbox"], tuple(entry["size"]), entry["mode"], convention)
        for k, v in entry["fields"].items():
            boxlist.add_field(k, v)
        predictions.append(boxlist)
    return predictions


def inference(
    model: nn.Module,
    data_loader: Any,
    dataset_name: str,
    iou_types: tuple[str, ...] = ("bbox",),
    box_only: bool = False,
    device: str = "cuda",
    expected_results: Sequence[Any] = (),
    expected_results_sigma_tol: float = 4,
    output_folder: str | None = None,
    *,
    coco_backend: str = "pycocotools",
    tta: TestTimeAugmentation | None = None,
) -> Any:
    """Detect on every image of ``data_loader.dataset`` and evaluate (on rank 0).

    Writes ``predictions.pth`` and the evaluator's files (``bbox.json`` for COCO) into
    ``output_folder`` when given. The positional parameters are the original's; ``box_only``
    (the original's proposal-recall evaluation, COCO only) scores the boxes class-agnostically.

    Returns:
        the evaluation result on rank 0 (see :func:`fcos_core.data.evaluation.evaluate`),
        None on other ranks.
    """
    dev = torch.device(resolve_device(device))
    num_devices = get_world_size()
    dataset = data_loader.dataset
    logger.info("Start evaluation on %s dataset (%d images).", dataset_name, len(dataset))
    total_timer, inference_timer = Timer(), Timer()
    total_timer.tic()
    predictions = compute_on_dataset(model, data_loader, dev, inference_timer, tta)
    synchronize()
    total_time = total_timer.toc()
    logger.info("Total run time: %s (%.4f s / img per device, on %d devices)",
                str(datetime.timedelta(seconds=total_time)),
                total_time * num_devices / len(dataset),
                num_devices)  # fmt: skip
    logger.info("Model inference time: %s (%.4f s / img per device, on %d devices)",
                get_time_str(inference_timer.total_time),
                inference_timer.total_time * num_devices / len(dataset), num_devices)  # fmt: skip
    predictions = gather_predictions(predictions, len(dataset))
    if predictions is None:
        return None
    if output_folder:
        os.makedirs(output_folder, exist_ok=True)
        save_predictions(predictions, os.path.join(output_folder, PREDICTIONS_FILE))
    return evaluate(
        dataset=dataset, predictions=predictions, output_folder=output_folder, box_only=box_only,
        iou_types=iou_types, expected_results=expected_results,
        expected_results_sigma_tol=expected_results_sigma_tol, coco_backend=coco_backend,
    )  # fmt: skip
