# fcos: set-up, tests and checks. `make quickstart` and `make test` are all a user needs.
# Every target installs first if needed; stamps under .venv keep a re-run fast.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMPS := $(VENV)/.stamps
DEPS_STAMP := $(STAMPS)/deps
EXT_STAMP := $(STAMPS)/ext
PINS_FILE := $(STAMPS)/pins

# Versions this project is tested with (pip freeze of a working .venv).
PINNED := setuptools==84.2.1 torch==2.14.1 torchvision==0.29.1 yacs==0.1.8 \
	opencv-python-headless==5.0.0.93 pycocotools==2.0.11 ninja==1.13.2 tqdm==4.70.1 numpy==2.4.6 \
	pytest==9.2.0 ruff==0.17.6 onnx==1.23.2 onnxruntime==1.31.1 matplotlib==3.11.2 \
	PyYAML==6.0.4 pillow==13.0.0

CSRC := $(shell find csrc -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' \))
# The build machine has 2 cores.
export MAX_JOBS ?= 2

# CUDA compile check: both architectures, against the installed torch, in its own build folder
# so that the CPU extension in fcos_core/ stays as it is.
CUDA_ARCHS := 8.0;9.0
CUDA_CHECK_DIR := build/cuda-check
# torch guesses CUDA_HOME from `which nvcc`; a wrapper script there points it at the wrong
# folder (no libcudart), so prefer the toolkit's own folder when it exists.
CUDA_HOME ?= $(firstword $(wildcard /usr/local/cuda))

.PHONY: install test test-fallback lint quickstart check-cuda check-gpu bench clean

install: $(EXT_STAMP)
	@ls fcos_core/_C*.so >/dev/null 2>&1 || { rm -f $(EXT_STAMP); $(MAKE) --no-print-directory $(EXT_STAMP); }

# Rewritten only when the pin list changes, so editing this Makefile does not reinstall.
$(PINS_FILE): FORCE
	@mkdir -p $(STAMPS)
	@echo '$(PINNED)' | cmp -s - $@ || echo '$(PINNED)' > $@

$(DEPS_STAMP): $(PINS_FILE)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(PINNED)
	touch $@

# CPU kernels only here (FORCE_CUDA=0): a CUDA build for every architecture takes many minutes on
# this 2-core machine, and `make check-cuda` compiles the CUDA kernels anyway. A plain
# `pip install --no-build-isolation -e .` builds the CUDA kernels whenever nvcc matches torch.
$(EXT_STAMP): $(DEPS_STAMP) setup.py build_decision.py pyproject.toml $(CSRC)
	FORCE_CUDA=0 $(PIP) install --no-build-isolation -e .
	touch $@

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q tests

# The whole suite again with the pure-PyTorch fallback ops (as when the extension is missing).
test-fallback: install
	FCOS_DISABLE_EXT=1 $(PY) -m pytest -q tests

lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check .

quickstart: install
	$(PY) tools/quickstart.py

check-cuda: $(DEPS_STAMP)
	CPATH="$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13/include$${CPATH:+:$$CPATH}" \
	FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$(CUDA_ARCHS)" $(if $(CUDA_HOME),CUDA_HOME=$(CUDA_HOME)) \
	$(PY) setup.py -q build_ext --build-temp $(CUDA_CHECK_DIR)/temp --build-lib $(CUDA_CHECK_DIR)/lib
	@ls $(CUDA_CHECK_DIR)/lib/fcos_core/_C*.so
	@echo "check-cuda: CUDA kernels compiled for TORCH_CUDA_ARCH_LIST=$(CUDA_ARCHS)"

# The self-test to run the first time a GPU is present (tools/check_gpu.py; under 8 minutes on one
# GPU, one table, exit 1 on any failure). With a GPU it first rebuilds the extension in place with
# CUDA kernels for the visible GPU; without one it says so and exits 0.
# CHECK_GPU_ARGS: e.g. `--out gpu-report --budget 360`.
check-gpu: install
	@if $(PY) -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then \
	  FORCE_CUDA=1 $(if $(CUDA_HOME),CUDA_HOME=$(CUDA_HOME)) $(PY) setup.py -q build_ext --inplace; \
	fi
	$(PY) tools/check_gpu.py $(CHECK_GPU_ARGS)

bench: install
	$(PY) benchmarks/bench_ops.py

clean:
	rm -rf build *.egg-info fcos_core/_C*.so

FORCE:
