"""Processes started by SLURM's ``srun`` join the process group without torchrun.

:func:`apply_slurm_environment` turns SLURM's per-task variables into the ``env://`` ones that
``torch.distributed`` and the launcher read: RANK (SLURM_PROCID), WORLD_SIZE (SLURM_STEP_NUM_TASKS
or SLURM_NTASKS), LOCAL_RANK (SLURM_LOCALID), MASTER_ADDR (first host of SLURM_STEP_NODELIST or
SLURM_NODELIST, parsed here without ``scontrol``) and MASTER_PORT (derived from SLURM_JOB_ID so
every task picks the same one). Variables already set (e.g. by torchrun inside srun) win.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping

# MASTER_PORT = PORT_BASE + SLURM_JOB_ID % PORT_SPAN when not set
PORT_BASE = 20000
PORT_SPAN = 20000
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside brackets: "a[1,2],b" -> ["a[1,2]", "b"]."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise ValueError(f"unbalanced brackets in SLURM node list {text!r}")
    return parts + [current] if current else parts


def _expand_one(part: str, nodelist: str) -> list[str]:
    match = re.fullmatch(r"([^\[\]]*)\[([^\[\]]+)\]([^\[\]]*)", part)
    if match is None:
        if "[" in part or "]" in part:
            raise ValueError(f"cannot parse {part!r} of SLURM node list {nodelist!r}")
        return [part]
    prefix, ranges, suffix = match.groups()
    hosts = []
    for item in ranges.split(","):
        bounds = _RANGE.match(item)
        if bounds is None:
            raise ValueError(f"cannot parse range {item!r} of SLURM node list {nodelist!r}")
        lo, hi = bounds.group(1), bounds.group(2) or bounds.group(1)
        hosts += [f"{prefix}{n:0{len(lo)}d}{suffix}" for n in range(int(lo), int(hi) + 1)]
    return hosts


def expand_nodelist(nodelist: str) -> list[str]:
    """SLURM's compressed host list, expanded: "node[01-03],gpu5" -> node01 node02 node03 gpu5.

    Raises:
        ValueError: a form this parser does not handle (nested or unbalanced brackets).
    """
    return [
        host for part in _split_top_level(nodelist.strip()) for host in _expand_one(part, nodelist)
    ]


def apply_slurm_environment(env: MutableMapping[str, str] | None = None) -> bool:
    """Fill RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT from SLURM's variables.

    Does nothing outside an ``srun`` task (no SLURM_PROCID) or when RANK is already set.

    Returns:
        True if the variables were set from SLURM's.
    """
    env = os.environ if env is None else env
    if "SLURM_PROCID" not in env or "RANK" in env:
        return False
    world = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1"
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_NODELIST") or "127.0.0.1"
    env["RANK"] = env["SLURM_PROCID"]
    env["WORLD_SIZE"] = world
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    env.setdefault("MASTER_ADDR", expand_nodelist(nodes)[0])
    env.setdefault("MASTER_PORT", str(PORT_BASE + int(env.get("SLURM_JOB_ID", "0")) % PORT_SPAN))
    return True
