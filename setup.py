"""Builds the ``fcos_core._C`` extension (our NMS and sigmoid focal loss kernels) from csrc/.

CPU kernels always; CUDA kernels too when ``FORCE_CUDA=1`` or a GPU is visible. Install with
``pip install --no-build-isolation -e .`` so the build compiles against the installed torch.
"""

from __future__ import annotations

import glob
import os
import sys

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import (
    CUDA_HOME,
    BuildExtension,
    CppExtension,
    CUDAExtension,
    library_paths,
)

EXTENSION_NAME = "fcos_core._C"
# The build machine has 2 cores; ninja uses MAX_JOBS.
os.environ.setdefault("MAX_JOBS", "2")
# -ffp-contract=off: no fused multiply-add, so NMS IoUs round exactly like torchvision's.
# -fopenmp: at::parallel_for is header code; without it our loops would run on one thread.
OPENMP_FLAGS = ["-fopenmp"] if sys.platform.startswith("linux") else []
CXX_FLAGS = ["-O3", "-ffp-contract=off", *OPENMP_FLAGS]
NVCC_FLAGS = ["-O3", "--expt-relaxed-constexpr"]
# rpath to torch's libraries, so `import fcos_core._C` works even before `import torch`.
LINK_FLAGS = [f"-Wl,-rpath,{path}" for path in library_paths()] + OPENMP_FLAGS


def want_cuda() -> bool:
    """CUDA kernels are built when FORCE_CUDA=1 or when torch sees a GPU and nvcc exists."""
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.cuda.is_available() and CUDA_HOME is not None


def make_extension() -> CppExtension:
    sources = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    if want_cuda():
        return CUDAExtension(
            EXTENSION_NAME,
            sources + sorted(glob.glob("csrc/cuda/*.cu")),
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": CXX_FLAGS, "nvcc": NVCC_FLAGS},
            extra_link_args=LINK_FLAGS,
        )
    return CppExtension(
        EXTENSION_NAME,
        sources,
        extra_compile_args={"cxx": CXX_FLAGS},
        extra_link_args=LINK_FLAGS,
    )


setup(
    packages=find_packages(include=["fcos_core", "fcos_core.*"]),
    ext_modules=[make_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
