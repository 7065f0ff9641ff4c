"""Builds the ``fcos_core._C`` extension (our NMS and sigmoid focal loss kernels) from csrc/.

    pip install --no-build-isolation -e .               # CUDA kernels too when nvcc fits torch
    FORCE_CUDA=0 pip install --no-build-isolation -e .  # CPU kernels only
    FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="8.0;9.0" pip install --no-build-isolation -e .

What is built is decided in build_decision.py (CUDA whenever torch has CUDA and a matching nvcc
is found, GPU visible or not). Whatever the toolchain, the install completes: a CUDA compile
failure retries CPU-only, a CPU compile failure installs no extension (the package then uses its
pure-PyTorch ops); each with one message. fcos_core/_build_info.py records the outcome, which
``python -m fcos_core.utils.collect_env`` reports.
"""

from __future__ import annotations

import glob
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from build_decision import (  # noqa: E402
    BuildDecision,
    decide,
    fallback_message,
    openmp_problem,
    real_probes,
)

PROBES = real_probes()
DECISION: BuildDecision = decide(PROBES)
if DECISION.cuda:
    if DECISION.arch_list:
        os.environ["TORCH_CUDA_ARCH_LIST"] = DECISION.arch_list
    # torch finds CUDA_HOME from `which nvcc` otherwise, which may be a wrapper script.
    if "CUDA_HOME" not in os.environ and PROBES.nvcc_path:
        os.environ["CUDA_HOME"] = os.path.dirname(os.path.dirname(PROBES.nvcc_path))

from setuptools import find_packages, setup  # noqa: E402
from torch.utils.cpp_extension import (  # noqa: E402
    BuildExtension,
    CppExtension,
    CUDAExtension,
    library_paths,
)

EXTENSION_NAME = "fcos_core._C"
BUILD_INFO = os.path.join("fcos_core", "_build_info.py")
# The build machine has 2 cores; ninja uses MAX_JOBS.
os.environ.setdefault("MAX_JOBS", "2")
# -ffp-contract=off: no fused multiply-add, so NMS IoUs round exactly like torchvision's.
# -fopenmp: at::parallel_for is header code; without it our loops would run on one thread.
OPENMP_FLAGS = ["-fopenmp"] if sys.platform.startswith("linux") else []
CXX_FLAGS = ["-O3", "-ffp-contract=off", *OPENMP_FLAGS]
NVCC_FLAGS = ["-O3", "--expt-relaxed-constexpr"]
# rpath to torch's libraries, so `import fcos_core._C` works even before `import torch`.
LINK_FLAGS = [f"-Wl,-rpath,{path}" for path in library_paths()] + OPENMP_FLAGS


def make_extension(cuda: bool) -> CppExtension:
    sources = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    if cuda:
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


def cuda_archs_built() -> str:
    """The sm_XX list nvcc compiles for (torch's reading of TORCH_CUDA_ARCH_LIST / the GPUs)."""
    from torch.utils.cpp_extension import _get_cuda_arch_flags

    archs = sorted({f.split("code=")[-1] for f in _get_cuda_arch_flags()})
    return " ".join(archs)


class FallbackBuildExt(BuildExtension):
    """build_ext that never strands the install: CUDA failure -> CPU only -> no extension."""

    def run(self) -> None:
        info: dict[str, Any] = {"cuda": DECISION.cuda, "cpu_kernels": True}
        if DECISION.message:
            announce(DECISION.message)
            info["message"] = DECISION.message
        try:
            problem = openmp_problem(self.cxx_command())
            if problem:
                raise RuntimeError(problem)
            if DECISION.cuda:
                info["cuda_archs"] = cuda_archs_built()
                info["nvcc"] = PROBES.nvcc_version
            super().run()
        except Exception as error:  # noqa: BLE001 - any compiler failure: build less
            if DECISION.cuda and os.environ.get("FORCE_CUDA") == "1":
                raise
            info = self.build_less(error, info)
        self.write_build_info(info)

    def cxx_command(self) -> str:
        """The C++ compiler the build will use (torch's choice: CXX, else c++)."""
        from torch.utils.cpp_extension import get_cxx_compiler

        return get_cxx_compiler()

    def build_less(self, error: Exception, info: dict[str, Any]) -> dict[str, Any]:
        if info["cuda"]:
            announce(fallback_message("CUDA kernels", error, "the CPU kernels only"))
            info = {"cuda": False, "cpu_kernels": True, "message": str(error)[:300]}
            self.extensions = [make_extension(cuda=False)]
            try:
                super().run()
                return info
            except Exception as cpu_error:  # noqa: BLE001
                error = cpu_error
        message = fallback_message("C++ CPU kernels", error, "pure PyTorch (no extension)")
        announce(message)
        self.extensions = []
        return {"cuda": False, "cpu_kernels": False, "message": message}

    def write_build_info(self, info: dict[str, Any]) -> None:
        """fcos_core/_build_info.py next to the extension: in the source tree for an in-place
        (editable) build, in the build folder otherwise."""
        path = BUILD_INFO if self.inplace else os.path.join(self.build_lib, BUILD_INFO)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f'"""Written by setup.py: the last build."""\n\nBUILD_INFO = {info!r}\n')


def announce(message: str) -> None:
    """One framed message, on stderr (pip shows it with -v, and on failure)."""
    print(f"\n{'=' * 100}\n{message}\n{'=' * 100}\n", file=sys.stderr, flush=True)


if __name__ == "__main__":
    setup(
        packages=find_packages(include=["fcos_core", "fcos_core.*"]),
        ext_modules=[make_extension(DECISION.cuda)],
        cmdclass={"build_ext": FallbackBuildExt.with_options(use_ninja=True)},
    )
