"""Load a state_dict into a model by suffix matching, tolerating prefixes and shape changes.

Rules, applied in order:

1. A ``module.`` prefix (checkpoints saved from DistributedDataParallel) is stripped.
2. Each model key ``m`` takes the loaded key ``k`` with ``m == k`` or ``m`` ending in ``"." + k``;
   the longest such ``k`` wins (so ``layer1.0.conv1.weight`` loads into
   ``backbone.body.layer1.0.conv1.weight``). A loaded key claimed by two model keys at the same
   length is ambiguous and loaded into neither.
3. A matched pair whose shapes differ (e.g. ``cls_logits`` when fine-tuning to another class count)
   is skipped with a warning and keeps the model's own initialisation.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

logger = logging.getLogger(__name__)

DDP_PREFIX = "module."


@dataclass
class LoadReport:
    """What :func:`load_state_dict` did.

    Attributes:
        loaded: model key -> loaded key, for every value copied into the model.
        missing: model keys that received nothing.
        unused: loaded keys that went nowhere.
        mismatched: (model key, model shape, loaded shape) skipped because shapes differ.
        ambiguous: loaded keys that matched several model keys equally well.
    """

    loaded: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)


def strip_prefix_if_present(
    state_dict: dict[str, torch.Tensor], prefix: str = DDP_PREFIX
) -> OrderedDict[str, torch.Tensor]:
    """Remove ``prefix`` from every key that starts with it."""
    return OrderedDict(
        (k[len(prefix) :] if k.startswith(prefix) else k, v) for k, v in state_dict.items()
    )


def _key_suffixes(key: str) -> list[str]:
    """All dot-boundary suffixes of ``key``, longest first: a.b.c -> [a.b.c, b.c, c]."""
    parts = key.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def match_keys(model_keys: list[str], loaded_keys: list[str]) -> tuple[dict[str, str], list[str]]:
    """Pair each model key with the longest loaded key it ends with.

    Returns:
        (model key -> loaded key, loaded keys dropped as ambiguous).
    """
    loaded_set = set(loaded_keys)
    best: dict[str, str] = {}
    for m in model_keys:
        for suffix in _key_suffixes(m):
            if suffix in loaded_set:
                best[m] = suffix
                break
    claims: dict[str, list[str]] = {}
    for m, k in best.items():
        claims.setdefault(k, []).append(m)
    ambiguous = sorted(k for k, ms in claims.items() if len(ms) > 1)
    matches = {m: k for m, k in best.items() if len(claims[k]) == 1}
    return matches, ambiguous


def align_and_update_state_dicts(
    model_state: dict[str, torch.Tensor], loaded_state: dict[str, torch.Tensor]
) -> LoadReport:
    """Copy matching values of ``loaded_state`` into ``model_state`` (in place)."""
    matches, ambiguous = match_keys(list(model_state.keys()), list(loaded_state.keys()))
    report = LoadReport(ambiguous=ambiguous)
    for m, k in matches.items():
        target, value = model_state[m], loaded_state[k]
        if tuple(target.shape) != tuple(value.shape):
            report.mismatched.append((m, tuple(target.shape), tuple(value.shape)))
            continue
        model_state[m] = value.to(dtype=target.dtype)
        report.loaded[m] = k
    used = set(report.loaded.values())
    report.missing = [m for m in model_state if m not in report.loaded]
    report.unused = [k for k in loaded_state if k not in used]
    return report


def _log_report(report: LoadReport) -> None:
    for m, k in report.loaded.items():
        logger.debug("loaded %s <- %s", m, k)
    for m, model_shape, loaded_shape in report.mismatched:
        logger.warning(
            "Skipping %s: checkpoint shape %s != model shape %s (kept the model's init)",
            m,
            loaded_shape,
            model_shape,
        )
    for k in report.ambiguous:
        logger.warning("Skipping checkpoint key %s: it matches several model keys", k)
    logger.info(
        "Loaded %d tensors; %d model tensors not in the checkpoint; %d checkpoint tensors unused",
        len(report.loaded),
        len(report.missing),
        len(report.unused),
    )
    if report.missing:
        logger.info("Not in checkpoint: %s", _abbrev(report.missing))
    if report.unused:
        logger.info("Unused from checkpoint: %s", _abbrev(report.unused))


def _abbrev(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_state_dict(model: nn.Module, loaded_state_dict: dict[str, torch.Tensor]) -> LoadReport:
    """Load ``loaded_state_dict`` into ``model`` with prefix stripping and suffix matching.

    Args:
        model: the target module (a DDP wrapper is fine; its ``module`` is used).
        loaded_state_dict: key -> tensor, e.g. ``checkpoint["model"]``.

    Returns:
        the :class:`LoadReport`; mismatched shapes are warned about, never raised.
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    model_state = model.state_dict()
    loaded = strip_prefix_if_present(loaded_state_dict, DDP_PREFIX)
    report = align_and_update_state_dicts(model_state, loaded)
    _log_report(report)
    model.load_state_dict(model_state)
    return report
