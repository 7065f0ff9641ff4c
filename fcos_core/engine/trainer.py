"""The training loop (maskrcnn-benchmark's ``do_train``), resumable exactly.

Iterations are counted from 1 in logs, checkpoint names and ``arguments["iteration"]`` (the
number of completed iterations). A checkpoint saved after iteration ``k`` resumes with a data
loader built with ``start_iter=k``, the optimizer, scheduler, GradScaler and RNG states, so the
rest of the run is the one an uninterrupted run would have had.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import os
import resource
import signal
import time
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode

from fcos_core.config.checks import check_choice
from fcos_core.engine.amp import amp_dtype, autocast
from fcos_core.engine.event_writer import EventWriter
from fcos_core.solver.fit_schedule import fitted_length, scale_milestones
from fcos_core.utils.comm import (
    broadcast_flag,
    broadcast_int,
    get_world_size,
    is_main_process,
    reduce_dict,
)
from fcos_core.utils.metric_logger import MetricLogger
from fcos_core.utils.preemption import StopRequest, TrainingPreempted

logger = logging.getLogger(__name__)

NONFINITE_POLICIES = ("stop", "skip")
MB = 1024.0 * 1024.0
# SOLVER.FIT_TO_MAX_MINUTES: iterations left out of the speed measurement (start-up is slower),
# then iterations timed.
FIT_SKIP_ITERS = 5
FIT_WINDOW_ITERS = 50


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN/Inf loss with ``SOLVER.NONFINITE_LOSS`` "stop"."""


def max_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated, or the process's peak resident memory on CPU, in MB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KB


def current_rss_mb() -> float:
    """Resident memory of this process now, in MB (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / MB


class Trainer:
    """State of one training run; :func:`do_train` builds and runs it."""

    def __init__(self, cfg: CfgNode, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any, checkpointer: Any, device: torch.device, checkpoint_period: int,
                 arguments: dict[str, Any], scaler: torch.amp.GradScaler | None,
                 validate: Any = None) -> None:  # fmt: skip
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.checkpointer, self.device, self.arguments = checkpointer, device, arguments
        self.checkpoint_period = checkpoint_period
        self.scaler, self.validate = scaler, validate
        self.max_iter = arguments.get("max_iter", cfg.SOLVER.MAX_ITER)
        if self.max_iter != cfg.SOLVER.MAX_ITER:
            logger.info(
                "Resuming a schedule fitted to SOLVER.MAX_MINUTES: %d iterations instead of "
                "SOLVER.MAX_ITER %d",
                self.max_iter,
                cfg.SOLVER.MAX_ITER,
            )
        self.log_period = max(1, cfg.SOLVER.LOG_PERIOD)
        self.test_period = cfg.SOLVER.TEST_PERIOD
        self.clip = cfg.SOLVER.CLIP_GRAD_NORM
        self.nonfinite = check_choice(
            "SOLVER.NONFINITE_LOSS", cfg.SOLVER.NONFINITE_LOSS, NONFINITE_POLICIES
        )
        self.amp_dtype = amp_dtype(cfg, device.type)
        self.deadline = (
            time.time() + 60 * cfg.SOLVER.MAX_MINUTES if cfg.SOLVER.MAX_MINUTES > 0 else None
        )
        self.start_iter = arguments.setdefault("iteration", 0)
        # Fit once per run: a resumed run keeps the schedule its checkpoint was saved with.
        fit = cfg.SOLVER.FIT_TO_MAX_MINUTES and self.deadline is not None
        self.fit_pending = fit and "max_iter" not in arguments
        self.fit_window_start = 0.0
        arguments.setdefault("skipped_steps", 0)
        self.meters = MetricLogger(delimiter="  ")
        self.lr = optimizer.param_groups[0]["lr"]
        self.writer = EventWriter(checkpointer.save_dir, is_main_process(), self.start_iter)

    def run(self, data_loader: Any) -> None:
        """Train from ``arguments["iteration"]`` to ``SOLVER.MAX_ITER`` (or the time limit).

        With SOLVER.FIT_TO_MAX_MINUTES the end may move earlier (see :meth:`fit_to_deadline`).
        """
        logger.info("Start training at iteration %d of %d", self.start_iter, self.max_iter)
        self.model.train()
        start = end = time.time()
        it = self.start_iter
        stop = StopRequest()
        try:
            # bounded: a resumed fitted schedule ends before the data loader does
            batches = itertools.islice(data_loader, max(self.max_iter - self.start_iter, 0))
            with stop:
                for it, (images, targets, _) in enumerate(batches, self.start_iter + 1):
                    data_time = time.time() - end
                    reduced = self.step(images, targets, it)
                    batch_time = time.time() - end
                    end = time.time()
                    self.after_step(it, reduced, {"time": batch_time, "data": data_time})
                    self.stop_if_signalled(it, stop)
                    self.fit_to_deadline(it)
                    if it >= self.max_iter or self.time_is_up(it):
                        break
        finally:
            self.writer.close()
        done = it - self.start_iter
        total = time.time() - start
        logger.info(
            "Total training time: %s (%.4f s / it)",
            datetime.timedelta(seconds=int(total)),
            total / max(done, 1),
        )

    def stop_if_signalled(self, it: int, stop: StopRequest) -> None:
        """After SIGTERM / SIGUSR1 on any rank: checkpoint iteration ``it`` (unless just saved)
        and raise :class:`TrainingPreempted`; rerunning the same command resumes from here."""
        signum = stop.agreed(self.device)
        if not signum:
            return
        saved = it % self.checkpoint_period == 0 or it == self.max_iter
        path = None if saved else self.checkpointer.save(f"model_{it:07d}", **self.arguments)
        if saved and self.checkpointer.has_checkpoint():
            path = self.checkpointer.get_checkpoint_file()
        logger.warning(
            "Stopped by %s after iteration %d; checkpoint %s. Run the same command to resume.",
            signal.Signals(signum).name, it, path or "(written by rank 0)",
        )  # fmt: skip
        raise TrainingPreempted(signum, path)

    def step(self, images: Any, targets: Any, it: int) -> dict[str, torch.Tensor] | None:
        """One optimisation step; returns the process-averaged losses, None if skipped."""
        # Asynchronous copies from the DataLoader's pinned batches (CUDA); the kernels that use
        # them run on the same stream, after the copies.
        images = images.to(self.device, non_blocking=True)
        targets = [t.to(self.device, non_blocking=True) for t in targets]
        with autocast(self.device.type, self.amp_dtype):
            loss_dict = self.model(images, targets)
        losses = sum(loss.float() for loss in loss_dict.values())
        reduced = reduce_dict({**loss_dict, "loss": losses})
        self.lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
        if not self.losses_are_finite(reduced, it):
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            return None
        self.backward_and_update(losses)
        self.scheduler.step()
        return reduced

    def backward_and_update(self, losses: torch.Tensor) -> None:
        """Backward (scaled for float16), optional gradient clipping, optimizer step."""
        if self.scaler is not None:
            self.scaler.scale(losses).backward()
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
        else:
            losses.backward()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped by the scaler if gradients overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def losses_are_finite(self, reduced: dict[str, torch.Tensor], it: int) -> bool:
        """Check the reduced losses (identical on every rank, so all ranks agree).

        Raises:
            NonFiniteLossError: with policy "stop", naming the iteration and the loss.
        """
        values = torch.stack(list(reduced.values()))
        if bool(torch.isfinite(values).all()):
            return True
        bad = [k for k, v in reduced.items() if not torch.isfinite(v) and k != "loss"] or ["loss"]
        shown = ", ".join(f"{k} = {v.item():.4g}" for k, v in reduced.items())
        if self.nonfinite == "stop":
            last = (
                self.checkpointer.get_checkpoint_file()
                if self.checkpointer.has_checkpoint()
                else "none"
            )
            raise NonFiniteLossError(
                f"Non-finite loss at iteration {it}: {', '.join(bad)} is not finite ({shown}). "
                f"Training stopped without saving; last good checkpoint: {last}. Try a lower "
                "SOLVER.BASE_LR, SOLVER.CLIP_GRAD_NORM, or SOLVER.NONFINITE_LOSS skip."
            )
        self.arguments["skipped_steps"] += 1
        logger.warning(
            "Skipping iteration %d: non-finite %s (%s); %d step(s) skipped so far",
            it,
            ", ".join(bad),
            shown,
            self.arguments["skipped_steps"],
        )
        return False

    def after_step(
        self, it: int, reduced: dict[str, torch.Tensor] | None, times: dict[str, float]
    ) -> None:
        """Meters, log line, metrics.json, checkpoints and periodic validation."""
        self.arguments["iteration"] = it
        if reduced is not None:
            self.meters.update(**reduced)
        self.meters.update(**times)
        if it % self.log_period == 0 or it == self.max_iter:
            self.log(it)
        if it % self.checkpoint_period == 0:
            self.checkpointer.save(f"model_{it:07d}", **self.arguments)
        if it == self.max_iter:
            self.checkpointer.save("model_final", **self.arguments)
        if self.validate is not None and self.test_period > 0 and it % self.test_period == 0:
            metrics = self.validate(self.model)
            self.writer.write(it, {f"val/{k}": v for k, v in (metrics or {}).items()})
            self.model.train()

    def log(self, it: int) -> None:
        """The maskrcnn-benchmark log line, and the same numbers to metrics.json."""
        lr = self.lr
        eta_seconds = (
            self.meters.time.global_avg * (self.max_iter - it)
            if "time" in self.meters.meters
            else 0.0
        )
        mem = max_memory_mb(self.device)
        logger.info("  ".join([
            f"eta: {datetime.timedelta(seconds=int(eta_seconds))}", f"iter: {it}", str(self.meters),
            f"lr: {lr:.6f}", f"max mem: {mem:.0f}",
        ]))  # fmt: skip
        record = {name: m.latest for name, m in self.meters.meters.items()}
        record.update(
            lr=lr,
            eta_seconds=eta_seconds,
            max_mem_mb=mem,
            rss_mb=current_rss_mb(),
            skipped_steps=self.arguments["skipped_steps"],
        )
        self.writer.write(it, record)

    def fit_to_deadline(self, it: int) -> None:
        """SOLVER.FIT_TO_MAX_MINUTES: after the speed window, shorten a schedule that won't fit.

        The new length (from rank 0's measured speed) and the scaled STEPS and WARMUP_ITERS come
        from `fcos_core.solver.fit_schedule`; the length goes into ``arguments`` ("max_iter"), the
        steps and the warm-up length into the scheduler, so checkpoints carry them and a resumed
        run keeps them.
        """
        if not self.fit_pending:
            return
        done = it - self.start_iter
        if done == FIT_SKIP_ITERS:
            self.fit_window_start = time.time()
        if done < FIT_SKIP_ITERS + FIT_WINDOW_ITERS:
            return
        self.fit_pending = False
        now = time.time()
        per_iter = max(now - self.fit_window_start, 1e-9) / FIT_WINDOW_ITERS
        new_max = fitted_length(it, self.max_iter, self.deadline - now, per_iter)
        new_max = broadcast_int(-1 if new_max is None else new_max)  # rank 0's decision
        if new_max < 0:
            return
        steps = list(getattr(self.scheduler, "milestones", []))
        new_steps = scale_milestones(steps, it, self.max_iter, new_max)
        # the warm-up ends at a point of the schedule too: it moves like the steps
        warmup = int(getattr(self.scheduler, "warmup_iters", 0))
        new_warmup = scale_milestones([warmup], it, self.max_iter, new_max)[0] if warmup else 0
        logger.info(
            "SOLVER.FIT_TO_MAX_MINUTES: at %.3f s / it, %d iterations do not fit the time left; "
            "training %d iterations, learning-rate steps %s -> %s, warm-up %d -> %d",
            per_iter, self.max_iter, new_max, steps, new_steps, warmup, new_warmup,
        )  # fmt: skip
        self.max_iter = self.arguments["max_iter"] = new_max
        if steps:
            self.scheduler.milestones = new_steps
        if warmup:
            self.scheduler.warmup_iters = new_warmup

    def time_is_up(self, it: int) -> bool:
        """True (on every rank) once SOLVER.MAX_MINUTES have passed; saves model_final then."""
        if self.deadline is None or it >= self.max_iter:
            return False
        if not broadcast_flag(time.time() > self.deadline):
            return False
        logger.info(
            "SOLVER.MAX_MINUTES reached after iteration %d of %d: stopping", it, self.max_iter
        )
        self.log(it)
        self.checkpointer.save("model_final", **self.arguments)
        return True


def validation_function(cfg: CfgNode, data_loader_val: Any) -> Any:
    """callable(model) -> bbox metrics of the first of ``data_loader_val`` (one or a list)."""
    # inference imports the evaluators
    from fcos_core.engine.inference import build_test_time_augmentation, inference

    loaders = data_loader_val if isinstance(data_loader_val, (list, tuple)) else [data_loader_val]

    def validate(model: nn.Module) -> dict[str, float]:
        model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        results = [
            inference(
                model,
                loader,
                dataset_name=getattr(loader.dataset, "name", "val"),
                device=cfg.MODEL.DEVICE,
                tta=build_test_time_augmentation(cfg),
            )
            for loader in loaders
        ]
        first = results[0]  # (COCOResults, ...) on rank 0 for COCO data; None on other ranks
        if isinstance(first, tuple) and hasattr(first[0], "results"):
            return dict(first[0].results.get("bbox", {}))
        return dict(first) if isinstance(first, dict) and "map" in first else {}

    return validate


def do_train(
    cfg: CfgNode,
    model: nn.Module,
    data_loader: Any,
    data_loader_val: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    checkpointer: Any,
    device: torch.device | str,
    checkpoint_period: int,
    arguments: dict[str, Any],
    *,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Train ``model`` on ``data_loader`` (maskrcnn-benchmark's entry point).

    Args:
        cfg: config (SOLVER.*, AMP.*).
        model: the detector, already on ``device`` (DDP-wrapped when distributed).
        data_loader: yields ``(ImageList, tuple[BoxList], ids)``, ``MAX_ITER - start_iter``
            batches, starting at ``arguments["iteration"]``.
        data_loader_val: test loader (or list of them) evaluated every SOLVER.TEST_PERIOD
            iterations (metrics to the log and metrics.json as ``val/AP`` ...); may be None.
        optimizer, scheduler: from :mod:`fcos_core.solver`.
        checkpointer: a Checkpointer whose ``save_dir`` receives checkpoints and metrics.json.
        device: the training device.
        checkpoint_period: save ``model_{iter:07d}.pth`` every this many iterations.
        arguments: mutable run state saved in checkpoints; ``"iteration"`` = iterations done.
        scaler: GradScaler for float16 AMP (default: ``checkpointer.scaler``).

    Raises:
        NonFiniteLossError: a non-finite loss with SOLVER.NONFINITE_LOSS "stop".
    """
    if scaler is None:
        scaler = getattr(checkpointer, "scaler", None)
    validate = None
    if data_loader_val is not None and cfg.SOLVER.TEST_PERIOD > 0:
        validate = validation_function(cfg, data_loader_val)
    trainer = Trainer(
        cfg,
        model,
        optimizer,
        scheduler,
        checkpointer,
        torch.device(device),
        checkpoint_period,
        arguments,
        scaler,
        validate,
    )
    logger.info("Training on %d process(es)", get_world_size())
    trainer.run(data_loader)
