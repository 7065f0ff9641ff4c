"""Scale a schedule written for one batch size to another (the linear scaling rule).

With ``SOLVER.REFERENCE_IMS_PER_BATCH`` R > 0 and a global batch B = ``SOLVER.IMS_PER_BATCH``,
training uses BASE_LR x B/R and divides the iteration counts (MAX_ITER, STEPS, WARMUP_ITERS,
CHECKPOINT_PERIOD, TEST_PERIOD) by B/R, so the run sees the same number of images at the same
points of the schedule (Goyal et al. 2017; detectron2's ``REFERENCE_WORLD_SIZE``).
"""

from __future__ import annotations

from yacs.config import CfgNode

from fcos_core.config.checks import ConfigError

# iteration-count keys divided by the batch factor (each stays >= 1; 0 keeps "off")
ITERATION_KEYS = ("MAX_ITER", "WARMUP_ITERS", "CHECKPOINT_PERIOD", "TEST_PERIOD")


def _scaled_count(value: int, factor: float) -> int:
    return 0 if value == 0 else max(1, int(round(value / factor)))


def scale_schedule(cfg: CfgNode) -> str | None:
    """Apply REFERENCE_IMS_PER_BATCH to ``cfg`` (unfrozen) in place.

    Returns:
        a one-line description of what changed, or None when nothing did. REFERENCE_IMS_PER_BATCH
        is set to IMS_PER_BATCH afterwards, so scaling twice changes nothing.
    """
    solver = cfg.SOLVER
    reference, batch = solver.REFERENCE_IMS_PER_BATCH, solver.IMS_PER_BATCH
    if reference < 0:
        raise ConfigError(f"SOLVER.REFERENCE_IMS_PER_BATCH must be >= 0, got {reference}")
    if reference == 0 or reference == batch:
        return None
    factor = batch / reference
    before = f"BASE_LR {solver.BASE_LR:g}, MAX_ITER {solver.MAX_ITER}, STEPS {tuple(solver.STEPS)}"
    solver.BASE_LR = solver.BASE_LR * factor
    for key in ITERATION_KEYS:
        solver[key] = _scaled_count(solver[key], factor)
    solver.STEPS = tuple(_scaled_count(s, factor) for s in solver.STEPS)
    solver.REFERENCE_IMS_PER_BATCH = batch
    return (
        f"SOLVER.IMS_PER_BATCH {batch} vs SOLVER.REFERENCE_IMS_PER_BATCH {reference}: scaled "
        f"{before} to BASE_LR {solver.BASE_LR:g}, MAX_ITER {solver.MAX_ITER}, STEPS "
        f"{tuple(solver.STEPS)}, WARMUP_ITERS {solver.WARMUP_ITERS}"
    )


def config_file_batch(config_file: str) -> int:
    """SOLVER.IMS_PER_BATCH as the config file (on top of the defaults) sets it."""
    from fcos_core.config import cfg as defaults
    from fcos_core.config.checks import merge_file

    base = defaults.clone()
    if config_file:
        merge_file(base, config_file)
    return base.SOLVER.IMS_PER_BATCH


def batch_mismatch_warning(cfg: CfgNode, config_batch: int) -> str | None:
    """A warning when IMS_PER_BATCH was changed from the config file's ``config_batch`` without
    REFERENCE_IMS_PER_BATCH (the schedule then no longer matches the batch)."""
    batch = cfg.SOLVER.IMS_PER_BATCH
    if cfg.SOLVER.REFERENCE_IMS_PER_BATCH or batch == config_batch:
        return None
    return (
        f"SOLVER.IMS_PER_BATCH is {batch} but the config's schedule (BASE_LR, MAX_ITER, STEPS) "
        f"was written for {config_batch}: add SOLVER.REFERENCE_IMS_PER_BATCH {config_batch} to "
        f"scale them by {batch}/{config_batch}, or adjust them yourself"
    )
