"""Which run an output folder belongs to: the default OUTPUT_DIR and the resume guard.

- OUTPUT_DIR left at its default (".") becomes ``output/<config name>``, so two configs never
  share a folder by accident (set OUTPUT_DIR explicitly to choose another one).
- Every training checkpoint records the name of its config (``config_name``). Before resuming
  from OUTPUT_DIR's last checkpoint, :func:`check_resume` compares that name and the checkpoint's
  parameter names and shapes with the new run, and refuses a checkpoint of another run unless the
  user chose ``--resume`` (continue anyway) or ``--fresh`` (ignore it).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode

from fcos_core.config.checks import ConfigError, check_choice

logger = logging.getLogger(__name__)

# OUTPUT_DIR's value in config/defaults.py: "not chosen by the user".
DEFAULT_OUTPUT_DIR = "."
OUTPUT_ROOT = "output"
# resume policies of a training run
RESUME_POLICIES = ("auto", "force", "fresh")
# how many differing parameter names a refusal lists
SHOWN_KEYS = 3


def config_name(config_file: str | None) -> str:
    """``fcos_imprv_R_50_FPN_1x`` for ``configs/fcos/fcos_imprv_R_50_FPN_1x.yaml``."""
    if not config_file:
        return "defaults"
    return os.path.splitext(os.path.basename(config_file))[0]


def apply_default_output_dir(cfg: CfgNode, config_file: str | None) -> None:
    """Replace the default OUTPUT_DIR "." by ``output/<config name>`` (``cfg`` unfrozen)."""
    if cfg.OUTPUT_DIR == DEFAULT_OUTPUT_DIR:
        cfg.OUTPUT_DIR = os.path.join(OUTPUT_ROOT, config_name(config_file))


def _peek(path: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` memory-mapped (cheap), or None if it cannot be read."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # the checkpointer's own resume reports unreadable files
        return None
    return checkpoint if isinstance(checkpoint, dict) else None


def differences(checkpoint: dict[str, Any], model: nn.Module, name: str) -> list[str]:
    """Why ``checkpoint`` is not a checkpoint of this run ([] when it is)."""
    found = []
    saved_name = checkpoint.get("config_name")
    if saved_name and name and saved_name != name:
        found.append(f"config {saved_name!r}, this run's is {name!r}")
    saved = checkpoint.get("model", {})
    own = model.module.state_dict() if hasattr(model, "module") else model.state_dict()
    changed = sorted(
        k for k in set(saved) | set(own)
        if k not in saved or k not in own or tuple(saved[k].shape) != tuple(own[k].shape)
    )  # fmt: skip
    if changed:
        shown = ", ".join(changed[:SHOWN_KEYS]) + (", ..." if len(changed) > SHOWN_KEYS else "")
        found.append(f"another architecture ({len(changed)} parameters differ: {shown})")
    return found


def check_resume(checkpointer: Any, model: nn.Module, name: str, policy: str) -> bool:
    """Whether training resumes from ``checkpointer.save_dir``'s last checkpoint.

    Args:
        checkpointer: the run's Checkpointer.
        model: the run's model.
        name: this run's config name.
        policy: "auto" (resume when the checkpoint is this run's, else refuse), "force" (resume
            whatever it is), "fresh" (never resume).

    Raises:
        ConfigError: policy "auto" and the checkpoint belongs to another run.
    """
    check_choice("resume policy", policy, RESUME_POLICIES)
    if policy == "fresh" or not checkpointer.has_checkpoint():
        return False
    if policy == "force":
        return True
    path = checkpointer.get_checkpoint_file()
    checkpoint = _peek(path)
    why = differences(checkpoint, model, name) if checkpoint is not None else []
    if why:
        raise ConfigError(
            f"OUTPUT_DIR {checkpointer.save_dir} holds {os.path.basename(path)} of another run "
            f"({'; '.join(why)}): pass --fresh to start over there, --resume to continue from it "
            "anyway, or another OUTPUT_DIR"
        )
    return True
