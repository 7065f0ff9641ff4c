"""What ``tools/train_net.py`` and ``tools/test_net.py`` do, as functions the tools call.

Single process, ``torchrun`` and ``python -m torch.distributed.launch`` are all handled here: the
process group is created from the environment (NCCL on GPUs, gloo on CPU), only rank 0 writes
files, and training resumes from ``OUTPUT_DIR/last_checkpoint`` automatically.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode

from fcos_core.data.analysis import log_preflight
from fcos_core.data.build import make_data_loader
from fcos_core.engine.amp import build_grad_scaler
from fcos_core.engine.inference import build_test_time_augmentation, inference
from fcos_core.engine.run_info import check_resume
from fcos_core.engine.trainer import do_train
from fcos_core.export.fast_path import prepare_fast_inference
from fcos_core.layers._ops import extension_summary
from fcos_core.modeling.backbone.backbone import convert_sync_batchnorm_if_needed
from fcos_core.modeling.detector import build_detection_model
from fcos_core.solver import make_lr_scheduler, make_optimizer
from fcos_core.utils.checkpoint import DetectronCheckpointer
from fcos_core.utils.collect_env import collect_env_info
from fcos_core.utils.comm import (
    get_world_size,
    init_distributed,
    is_main_process,
    synchronize,
)
from fcos_core.utils.device_setup import configure_backends, ddp_kwargs, no_forward_buffer_sync
from fcos_core.utils.env import resolve_device, seed_all, tune_malloc_for_cpu_training
from fcos_core.utils.logger import setup_logger

logger = logging.getLogger(__name__)


def setup(cfg: CfgNode, local_rank: int, config_file: str | None, log_env: bool = True) -> bool:
    """Resolve the device, join the process group, set up logging, save the config, seed.

    ``cfg`` must be unfrozen (MODEL.DEVICE is rewritten to the resolved device); it is frozen on
    return.

    Returns:
        True when running distributed.
    """
    rank = int(os.environ.get("RANK", "0"))  # set by torchrun / launch before the group exists
    output_dir = cfg.OUTPUT_DIR
    if output_dir and rank == 0:
        os.makedirs(output_dir, exist_ok=True)
    log = setup_logger("fcos_core", output_dir if rank == 0 else None, rank)
    cfg.MODEL.DEVICE = resolve_device(cfg.MODEL.DEVICE)
    distributed = init_distributed(cfg.MODEL.DEVICE, local_rank, cfg.DIST_TIMEOUT_MINUTES)
    configure_backends(cfg)
    if cfg.MODEL.DEVICE == "cpu":
        tune_malloc_for_cpu_training()
    backend = f", {torch.distributed.get_backend()} backend" if distributed else ""
    log.info("Using %d process(es)%s; device %s", get_world_size(), backend, cfg.MODEL.DEVICE)
    if log_env:
        log.info("Collecting env info (might take some time)\n%s", collect_env_info())
    else:  # always: which backends our ops have and what falls back
        log.info("fcos_core._C: %s", extension_summary())
    if config_file:
        with open(config_file) as f:
            log.info("Loaded configuration file %s:\n%s", config_file, f.read())
    log.info("Running with config:\n%s", cfg)
    if output_dir and is_main_process():
        with open(os.path.join(output_dir, "config.yml"), "w") as f:
            f.write(cfg.dump())
    seed_all(cfg.SEED)
    cfg.freeze()
    return distributed


def build_model(cfg: CfgNode) -> nn.Module:
    """The detector on ``cfg.MODEL.DEVICE`` (SyncBN-converted if asked)."""
    model = build_detection_model(cfg).to(torch.device(cfg.MODEL.DEVICE))
    return convert_sync_batchnorm_if_needed(model, cfg)


def _wrap_ddp(model: nn.Module, cfg: CfgNode, local_rank: int) -> nn.Module:
    """DDP without per-forward buffer syncing (each rank keeps its BN statistics, as in
    maskrcnn-benchmark; SyncBN, when asked for, shares them instead)."""
    return nn.parallel.DistributedDataParallel(
        model, **ddp_kwargs(cfg.MODEL.DEVICE, local_rank), **no_forward_buffer_sync()
    )


def train(
    cfg: CfgNode, local_rank: int, distributed: bool, *, resume: str = "auto", config_name: str = ""
) -> nn.Module:
    """Build everything, resume if OUTPUT_DIR has a checkpoint of this run, and train.

    Args:
        resume: "auto" (resume OUTPUT_DIR's last checkpoint when it belongs to this run, refuse
            one of another run), "force" (resume it anyway) or "fresh" (start from MODEL.WEIGHT).
        config_name: recorded in the checkpoints; "auto" compares it (see `engine.run_info`).

    Returns:
        the trained model (DDP-wrapped when distributed).
    """
    model = build_model(cfg)
    optimizer = make_optimizer(cfg, model)
    scheduler = make_lr_scheduler(cfg, optimizer)
    scaler = build_grad_scaler(cfg, torch.device(cfg.MODEL.DEVICE).type)
    if distributed:
        model = _wrap_ddp(model, cfg, local_rank)
    checkpointer = DetectronCheckpointer(
        cfg, model, optimizer, scheduler, cfg.OUTPUT_DIR, is_main_process(), scaler=scaler
    )
    arguments: dict[str, Any] = {"iteration": 0}
    resuming = check_resume(checkpointer, model, config_name, resume)
    arguments.update(checkpointer.load(cfg.MODEL.WEIGHT, use_latest=resuming))
    if config_name:
        arguments["config_name"] = config_name
    data_loader = make_data_loader(cfg, is_train=True, is_distributed=distributed,
                                   start_iter=arguments["iteration"])  # fmt: skip
    if is_main_process():  # `fcos analyze-data` gives the full report
        log_preflight(cfg, data_loader.dataset, logger)
    loaders_val = None
    if cfg.SOLVER.TEST_PERIOD > 0 and cfg.DATASETS.TEST:
        loaders_val = make_data_loader(cfg, is_train=False, is_distributed=distributed)
    do_train(
        cfg,
        model,
        data_loader,
        loaders_val,
        optimizer,
        scheduler,
        checkpointer,
        cfg.MODEL.DEVICE,
        cfg.SOLVER.CHECKPOINT_PERIOD,
        arguments,
        scaler=scaler,
    )
    return model


def run_test(
    cfg: CfgNode, model: nn.Module, distributed: bool, write_files: bool = True
) -> list[Any]:
    """Evaluate ``model`` on every DATASETS.TEST dataset.

    Results go to ``OUTPUT_DIR/inference/<dataset>/`` (predictions.pth, bbox.json, ...).

    Returns:
        one evaluation result per dataset on rank 0 (None entries on other ranks).
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    if cfg.TEST.FAST_PATH:  # a folded copy; the training model keeps its weights
        model = prepare_fast_inference(model, cfg)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    loaders = make_data_loader(cfg, is_train=False, is_distributed=distributed)
    results = []
    for name, loader in zip(cfg.DATASETS.TEST, loaders):
        folder = (
            os.path.join(cfg.OUTPUT_DIR, "inference", name)
            if cfg.OUTPUT_DIR and write_files
            else None
        )
        results.append(inference(
            model, loader, dataset_name=name, iou_types=("bbox",),
            device=cfg.MODEL.DEVICE, expected_results=cfg.TEST.EXPECTED_RESULTS,
            expected_results_sigma_tol=cfg.TEST.EXPECTED_RESULTS_SIGMA_TOL, output_folder=folder,
            coco_backend=cfg.TEST.COCO_EVAL_BACKEND, tta=build_test_time_augmentation(cfg),
        ))  # fmt: skip
        synchronize()
    return results


def load_for_test(cfg: CfgNode, model: nn.Module, ckpt: str | None, resume: bool = False) -> None:
    """Load the weights to evaluate (detectron2's ``resume_or_load``): ``ckpt`` if given, else
    MODEL.WEIGHT if set (OUTPUT_DIR's checkpoints are not looked at), else, or with ``resume``,
    OUTPUT_DIR's last checkpoint (MODEL.WEIGHT when there is none)."""
    checkpointer = DetectronCheckpointer(cfg, model, save_dir=cfg.OUTPUT_DIR, save_to_disk=False)
    use_latest = ckpt is None and (resume or not cfg.MODEL.WEIGHT)
    checkpointer.load(ckpt or cfg.MODEL.WEIGHT, use_latest=use_latest)
    report = checkpointer.last_load_report
    if report is not None and (report.missing or report.mismatched):
        logger.warning(
            "The evaluated weights leave %d parameters untrained; to evaluate the training in "
            "%s pass --resume (or --ckpt FILE)",
            len(report.missing) + len(report.mismatched),
            cfg.OUTPUT_DIR,
        )
