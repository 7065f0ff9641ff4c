"""Save and restore training state; load pretrained weights from files, URLs and the catalog.

A checkpoint is a dict saved with ``torch.save``::

    {"model": state_dict, "optimizer": ..., "scheduler": ..., "scaler": ...,
     "rng": {"torch", "cuda", "numpy", "python"}, "iteration": int, ...extra}

Every value is a tensor or a plain container, so it loads with ``torch.load(weights_only=True)``.
Files and the ``last_checkpoint`` pointer are written atomically (see :mod:`safe_io`).
"""

from __future__ import annotations

import glob
import logging
import os
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode

from fcos_core.utils.c2_model_loading import (
    convert_torchvision_resnet,
    is_torchvision_resnet,
    load_c2_format,
    rename_for_deformable,
)
from fcos_core.utils.comm import is_main_process
from fcos_core.utils.model_serialization import LoadReport, load_state_dict
from fcos_core.utils.model_zoo import CACHE_ENV, cache_dir, cache_url
from fcos_core.utils.rng import get_rng_states, set_rng_states
from fcos_core.utils.safe_io import (
    CheckpointLoadError,
    UnsafeCheckpointError,
    atomic_save,
    atomic_write_text,
    load_pth,
)

LAST_CHECKPOINT = "last_checkpoint"
_STATE_KEYS = ("model", "optimizer", "scheduler", "scaler", "rng")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class Checkpointer:
    """Save/load model, optimizer, scheduler, GradScaler and RNG states.

    Args:
        model: the model (DDP-wrapped is fine).
        optimizer, scheduler, scaler: optional training state objects.
        save_dir: folder for checkpoints and ``last_checkpoint``; "" disables saving.
        save_to_disk: write files (default: only on the main process).
        logger: logger to use (default: this module's).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        save_dir: str = "",
        save_to_disk: bool | None = None,
        logger: logging.Logger | None = None,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.save_dir = save_dir
        self.save_to_disk = is_main_process() if save_to_disk is None else save_to_disk
        self.logger = logger or logging.getLogger(__name__)
        # What the last load did (keys loaded, missing, unused, mismatched).
        self.last_load_report: LoadReport | None = None

    def save(self, name: str, **extra: Any) -> str | None:
        """Atomically write ``save_dir/name.pth`` and point ``last_checkpoint`` at it.

        Args:
            name: file stem, e.g. "model_0005000" or "model_final".
            **extra: more entries, e.g. ``iteration=5000``.

        Returns:
            the written path, or None when this process does not save.
        """
        if not self.save_dir or not self.save_to_disk:
            return None
        data: dict[str, Any] = {"model": _unwrap(self.model).state_dict()}
        for key in ("optimizer", "scheduler", "scaler"):
            obj = getattr(self, key)
            if obj is not None:
                data[key] = obj.state_dict()
        data["rng"] = get_rng_states()
        data.update(extra)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info("Saving checkpoint to %s", path)
        os.makedirs(self.save_dir, exist_ok=True)
        self._remove_stale_temp_files()
        atomic_save(data, path)
        self.tag_last_checkpoint(path)
        return path

    def _remove_stale_temp_files(self) -> None:
        """Temp files of saves that were killed midway (this process is the only writer)."""
        for stale in glob.glob(os.path.join(self.save_dir, ".*.tmp")):
            os.remove(stale)

    def load(self, f: str | None = None, use_latest: bool = True) -> dict[str, Any]:
        """Resume from ``last_checkpoint`` if present (and ``use_latest``), else load ``f``.

        As the original: the latest checkpoint of ``save_dir`` wins over ``f``; with neither, the
        model keeps its initialisation and {} is returned. A ``last_checkpoint`` that names no
        file (removed meanwhile) counts as none.

        Returns:
            the checkpoint's extra entries (e.g. ``{"iteration": 5000}``, plus ``"max_iter"`` when
            the run's schedule was fitted to SOLVER.MAX_MINUTES); {} when nothing was loaded.
        """
        if use_latest and self.has_checkpoint():
            candidates = self.resume_candidates()
            if candidates:
                return self._resume(candidates)
        if not f:
            self.logger.info("No checkpoint found. Initializing model from scratch")
            return {}
        self.logger.info("Loading checkpoint from %s", f)
        return self._apply(self._load_file(f), restore_rng=False)

    def has_checkpoint(self) -> bool:
        """True when ``save_dir/last_checkpoint`` exists."""
        return bool(self.save_dir) and os.path.exists(os.path.join(self.save_dir, LAST_CHECKPOINT))

    def get_checkpoint_file(self) -> str:
        """Path named by ``last_checkpoint`` (relative names resolve inside ``save_dir``).

        Returns:
            "" when there is no readable ``last_checkpoint`` (as the original: e.g. another
            process has just removed it) or it is empty.
        """
        try:
            with open(os.path.join(self.save_dir, LAST_CHECKPOINT)) as f:
                name = f.read().strip()
        except OSError:
            return ""
        if not name:
            return ""
        return name if os.path.isabs(name) else os.path.join(self.save_dir, name)

    def tag_last_checkpoint(self, path: str) -> None:
        """Atomically record ``path`` (as a name relative to ``save_dir``) as the latest."""
        rel = os.path.relpath(path, self.save_dir)
        atomic_write_text(os.path.join(self.save_dir, LAST_CHECKPOINT), rel + "\n")

    def resume_candidates(self) -> list[str]:
        """The ``last_checkpoint`` target (if any), then the other ``model_*.pth``, newest first."""
        latest = self.get_checkpoint_file()
        others = [p for p in glob.glob(os.path.join(self.save_dir, "model_*.pth")) if p != latest]
        others.sort(key=lambda p: (os.path.getmtime(p), p), reverse=True)
        return ([latest] if latest else []) + others

    def _resume(self, candidates: list[str]) -> dict[str, Any]:
        tried = []
        for path in candidates:
            try:
                checkpoint = self._load_file(path)
            except UnsafeCheckpointError:
                raise
            except CheckpointLoadError as e:
                self.logger.warning("%s; falling back to the previous checkpoint", e)
                tried.append(path)
                continue
            if tried:
                self.logger.warning("Resuming from %s instead of %s", path, tried[0])
            self.logger.info("Resuming from %s", path)
            return self._apply(checkpoint, restore_rng=True)
        raise CheckpointLoadError(
            f"no readable checkpoint in {self.save_dir}: tried {', '.join(tried)}"
        )

    def _load_file(self, f: str) -> dict[str, Any]:
        checkpoint = load_pth(f)
        if not isinstance(checkpoint, dict):
            raise CheckpointLoadError(f"{f} holds a {type(checkpoint).__name__}, expected a dict")
        return checkpoint

    def _apply(self, checkpoint: dict[str, Any], restore_rng: bool) -> dict[str, Any]:
        """Load the model, then the training state if the weights fit the model exactly.

        Weights that fit only partly (fine-tuning to another class count, ImageNet weights)
        start a new run: solver states and the iteration count are not taken over.
        """
        if "model" not in checkpoint:
            checkpoint = {"model": checkpoint}
        report = self.last_load_report = load_state_dict(self.model, checkpoint["model"])
        extra = {k: v for k, v in checkpoint.items() if k not in _STATE_KEYS}
        if report.missing or report.mismatched:
            if any(k in checkpoint for k in ("optimizer", "scheduler", "iteration")):
                self.logger.warning(
                    "The checkpoint does not fit the model exactly: its optimizer, scheduler and "
                    "iteration are ignored (training starts at iteration 0)"
                )
            extra.pop("iteration", None)
            extra.pop("max_iter", None)  # a fitted schedule length belongs to that run too
            return extra
        for key in ("optimizer", "scheduler", "scaler"):
            obj = getattr(self, key)
            if obj is not None and key in checkpoint:
                self.logger.info("Loading %s state from the checkpoint", key)
                obj.load_state_dict(checkpoint[key])
        if restore_rng and "rng" in checkpoint:
            set_rng_states(checkpoint["rng"])
        return extra


class DetectronCheckpointer(Checkpointer):
    """:class:`Checkpointer` that also reads ``catalog://`` names, http(s) URLs, Caffe2 ``.pkl``
    and torchvision ImageNet ResNet weights (``torchvision://resnet50`` or a downloaded file).

    ``.pkl`` files are parsed with an allow-list unpickler (NumPy arrays and plain containers
    only), so they load without any flag; ``MODEL.WEIGHT_ALLOW_PICKLE`` is no longer needed and
    is accepted (and ignored) so that older configs keep loading.

    Args:
        cfg: config (cloned).
        other arguments: as :class:`Checkpointer`.
    """

    def __init__(self, cfg: CfgNode, model: nn.Module, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        self.cfg = cfg.clone()
        if self.cfg.MODEL.WEIGHT_ALLOW_PICKLE:
            self.logger.info(
                "MODEL.WEIGHT_ALLOW_PICKLE is no longer needed: every .pkl is read with an "
                "allow-list unpickler that rebuilds only NumPy arrays"
            )

    def _load_file(self, f: str) -> dict[str, Any]:
        f = self._local_path(f)
        if f.endswith(".pkl"):
            converted = load_c2_format(self.cfg, f)["model"]
            model_keys = list(_unwrap(self.model).state_dict().keys())
            return {"model": rename_for_deformable(converted, model_keys)}
        checkpoint = super()._load_file(f)
        if "model" not in checkpoint and is_torchvision_resnet(checkpoint):
            self.logger.info("%s looks like torchvision ImageNet ResNet weights; converting", f)
            return {"model": convert_torchvision_resnet(checkpoint)}
        return checkpoint

    def _local_path(self, f: str) -> str:
        """Resolve ``catalog://`` and ``torchvision://`` names and download URLs to a file."""
        if f.startswith("catalog://"):
            from fcos_core.config.paths_catalog import ModelCatalog

            try:
                catalog_f = ModelCatalog.get(f[len("catalog://") :])
            except KeyError as e:
                raise CheckpointLoadError(str(e.args[0]) if e.args else str(e)) from None
            self.logger.info("%s points to %s", f, catalog_f)
            if not catalog_f.startswith(("http://", "https://")):
                return _provided_file(f, catalog_f)
            f = catalog_f
        if f.startswith("torchvision://"):
            return cache_url(_torchvision_weights_url(f[len("torchvision://") :]))
        if f.startswith(("http://", "https://")):
            return cache_url(f)
        return f


def _provided_file(name: str, file_name: str) -> str:
    """The cached copy of a catalog file that no live host serves, or an error saying so."""
    path = os.path.join(cache_dir(), file_name)
    if os.path.isfile(path):
        return path
    raise CheckpointLoadError(
        f"{name}: no live download host is known for {file_name} (the links the original "
        f"repositories give are dead). Provide the file yourself: put it at {path} (the download "
        f"cache; set ${CACHE_ENV} to use another folder), or set MODEL.WEIGHT to its path. "
        "See docs/pretrained.md."
    )


def _torchvision_weights_url(arch: str) -> str:
    """ImageNet-1k (V1) weights URL of a torchvision classification model, e.g. "resnet50"."""
    import torchvision

    try:
        weights_enum = torchvision.models.get_model_weights(arch)
    except ValueError as e:
        raise CheckpointLoadError(
            f"torchvision://{arch}: unknown torchvision model ({e})"
        ) from None
    return weights_enum.IMAGENET1K_V1.url
