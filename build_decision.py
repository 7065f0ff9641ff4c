"""What setup.py builds: CUDA + CPU kernels, CPU kernels only, or nothing (pure PyTorch).

A ``pip install`` must never strand a user, so every way of not building the CUDA kernels gives a
working install and one message saying what was found, what is needed and how to retry:

- ``FORCE_CUDA=0``: CPU kernels only, on purpose (no message).
- ``FORCE_CUDA=1``: CUDA kernels or a loud failure (the user asked for them).
- otherwise: CUDA kernels when torch is a CUDA build and an nvcc is found whose major version is
  torch's CUDA major and which is at least ``MIN_NVCC``, GPU visible or not; else CPU only.
- When the compiler then fails (``BuildDecision.on_failure``): CUDA -> retry CPU only -> no
  extension at all (the package's pure-PyTorch ops, with their one import warning).

The probes (torch's CUDA version, nvcc, visible GPUs, environment) are arguments, so tests can
fake every case; setup.py passes the real ones (:func:`real_probes`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MIN_NVCC = (12, 0)  # torch 2.x headers need C++17 and CUDA 12 for its CUDA 12/13 builds
INSTALL = "pip install --no-build-isolation -e ."


class BuildDecisionError(RuntimeError):
    """FORCE_CUDA=1 but the CUDA kernels cannot be built here."""


@dataclass
class Probes:
    """What the build machine has."""

    torch_cuda: str | None  # torch.version.cuda, None for a CPU build of torch
    nvcc_path: str | None  # the nvcc that would be used, None if none was found
    nvcc_version: str | None  # "13.0"; None if it could not be run
    visible_gpus: int  # torch.cuda.device_count()
    torch_archs: list[str] = field(default_factory=list)  # torch.cuda.get_arch_list()
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class BuildDecision:
    """``cuda``: compile the CUDA kernels; ``arch_list``: TORCH_CUDA_ARCH_LIST to use (None: leave
    it to torch, i.e. the visible GPUs); ``message``: one line for the user, or None."""

    cuda: bool
    arch_list: str | None = None
    message: str | None = None


def parse_version(text: str | None) -> tuple[int, int] | None:
    """(major, minor) from "13.0" or nvcc's "release 13.0, V13.0.88"; None if absent."""
    found = re.search(r"(\d+)\.(\d+)", text or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def default_arch_list(torch_archs: list[str]) -> str:
    """No GPU visible and no TORCH_CUDA_ARCH_LIST: every architecture torch itself was built for
    (``sm_80`` -> ``8.0``), the newest also as PTX so that later GPUs can JIT it."""
    numbers = sorted({int(a[3:]) for a in torch_archs if re.fullmatch(r"sm_\d+", a)})
    if not numbers:
        return "8.0;9.0+PTX"
    archs = [f"{n // 10}.{n % 10}" for n in numbers]
    archs[-1] += "+PTX"
    return ";".join(archs)


def _cpu_only(reason: str, forced: bool, probes: Probes) -> BuildDecision:
    needed = (
        f"nvcc {probes.torch_cuda} (major {parse_version(probes.torch_cuda)[0]})"
        if (probes.torch_cuda)
        else "a CUDA build of torch"
    )
    text = (
        f"fcos_core: building CPU kernels only: {reason}; the CUDA kernels need {needed}. "
        f"CUDA inputs will use the slower reference ops. To retry: install that CUDA toolkit, "
        f"set CUDA_HOME to it and run FORCE_CUDA=1 {INSTALL} (FORCE_CUDA=0 skips CUDA quietly)."
    )
    if forced:
        raise BuildDecisionError(f"FORCE_CUDA=1 but {reason}. {text}")
    return BuildDecision(cuda=False, message=text)


def decide(probes: Probes) -> BuildDecision:
    """The build for these probes (see the module docstring).

    Raises:
        BuildDecisionError: FORCE_CUDA=1 and no usable CUDA toolchain.
    """
    force = probes.env.get("FORCE_CUDA", "").strip()
    if force == "0":
        return BuildDecision(cuda=False)
    forced = force == "1"
    if probes.torch_cuda is None:
        return _cpu_only("this torch is a CPU-only build", forced, probes)
    torch_version = parse_version(probes.torch_cuda)
    if probes.nvcc_path is None:
        return _cpu_only("no nvcc was found (CUDA_HOME, PATH)", forced, probes)
    nvcc = parse_version(probes.nvcc_version)
    if nvcc is None:
        return _cpu_only(f"{probes.nvcc_path} did not report a version", forced, probes)
    found = f"{probes.nvcc_path} is CUDA {nvcc[0]}.{nvcc[1]}"
    if torch_version and nvcc[0] != torch_version[0]:
        return _cpu_only(
            f"{found} but torch was built with CUDA {probes.torch_cuda}", forced, probes
        )
    if nvcc < MIN_NVCC:
        return _cpu_only(f"{found}, older than {MIN_NVCC[0]}.{MIN_NVCC[1]}", forced, probes)
    arch_list = probes.env.get("TORCH_CUDA_ARCH_LIST") or None
    if arch_list is None and probes.visible_gpus == 0:
        arch_list = default_arch_list(probes.torch_archs)
    return BuildDecision(cuda=True, arch_list=arch_list)


def fallback_message(stage: str, error: BaseException, next_step: str) -> str:
    """The one message when compiling failed and the build continues with less."""
    detail = " ".join(str(error).split())[:300]
    return (
        f"fcos_core: compiling the {stage} failed ({type(error).__name__}: {detail}); "
        f"installing {next_step} instead. See the compiler output above; retry with "
        f"`{INSTALL}` once it is fixed (FORCE_CUDA=1 makes a CUDA failure fatal)."
    )


def openmp_problem(cxx: str, run: Any = subprocess.run) -> str | None:
    """Why ``cxx`` cannot compile torch's CPU headers (they include <omp.h>), or None.

    Clang without libomp (Debian's clang, macOS) is the usual case; checked by preprocessing one
    include, so the message can say what to install instead of a compiler error.
    """
    if os.name == "nt":
        return None
    try:
        result = run(
            [*shlex.split(cxx), "-fopenmp", "-x", "c++", "-E", "-", "-o", os.devnull],
            input="#include <omp.h>\n", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None  # not diagnosable here: the build itself will report it
    if result.returncode == 0:
        return None
    return (
        f"the C++ compiler {cxx!r} has no OpenMP (<omp.h>), which torch's CPU headers include; "
        "install libomp-dev (Debian/Ubuntu clang) or `brew install libomp` (macOS), or use g++"
    )


def find_nvcc(env: Mapping[str, str]) -> str | None:
    """nvcc under CUDA_HOME / CUDA_PATH, then /usr/local/cuda, then on PATH."""
    for home in (env.get("CUDA_HOME"), env.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and os.path.isfile(os.path.join(home, "bin", "nvcc")):
            return os.path.join(home, "bin", "nvcc")
    return shutil.which("nvcc", path=env.get("PATH"))


def nvcc_version(nvcc: str | None) -> str | None:
    """``nvcc --version``'s "release X.Y"; None when it cannot be run."""
    if nvcc is None:
        return None
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"release (\d+\.\d+)", out.stdout)
    return found.group(1) if found else None


def real_probes() -> Probes:
    """The probes of this machine (imports torch)."""
    import torch

    env = dict(os.environ)
    nvcc = find_nvcc(env)
    has_cuda = torch.version.cuda is not None
    return Probes(
        torch_cuda=torch.version.cuda,
        nvcc_path=nvcc,
        nvcc_version=nvcc_version(nvcc),
        visible_gpus=torch.cuda.device_count() if has_cuda else 0,
        torch_archs=torch.cuda.get_arch_list() if has_cuda else [],
        env=env,
    )
