"""Loading the extension, and the fallback: FCOS_DISABLE_EXT=1 or a missing extension gives one
warning, never an import error, and the whole layer suite passes on the pure-PyTorch path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fcos_core.layers import _ops

LAYER_TESTS = Path(__file__).resolve().parent
REPO_ROOT = LAYER_TESTS.parents[1]

CHECK_IMPORT = """
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    {prelude}
    import fcos_core.layers as layers
    import fcos_core.layers.nms, fcos_core.layers.sigmoid_focal_loss  # no second warning
import torch
assert not layers.HAS_EXT
ours = [w for w in caught if "pure-PyTorch reference" in str(w.message)]
assert len(ours) == 1, [str(w.message) for w in caught]
print(ours[0].message)
boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10]])
print(layers.nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist())
"""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")
def test_importing_the_package_registers_the_ops():
    code = "import fcos_core, torch; print(torch.ops.fcos.nms, torch.ops.fcos.sigmoid_focal_loss)"
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "fcos.nms" in result.stdout and "pure-PyTorch" not in result.stderr


def test_disabled_extension_warns_once_and_works():
    result = run_python(CHECK_IMPORT.format(prelude="pass"), FCOS_DISABLE_EXT="1")
    assert result.returncode == 0, result.stderr
    assert "FCOS_DISABLE_EXT=1 is set" in result.stdout
    assert result.stdout.strip().endswith("[0]")


def test_missing_extension_warns_once_and_works():
    prelude = "import sys; sys.modules['fcos_core._C'] = None  # import of _C now fails"
    result = run_python(CHECK_IMPORT.format(prelude=prelude), FCOS_DISABLE_EXT="0")
    assert result.returncode == 0, result.stderr
    assert "fcos_core._C could not be loaded" in result.stdout


def test_layer_suite_passes_with_extension_disabled():
    this_file = Path(__file__).name
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(LAYER_TESTS),
            f"--ignore={LAYER_TESTS / this_file}",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "FCOS_DISABLE_EXT": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
