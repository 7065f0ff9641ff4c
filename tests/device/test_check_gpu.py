"""tools/check_gpu.py on the CPU: the no-GPU path, the sections at tiny sizes, the table, the
exit status, time caps and the budget (the GPU part runs with `make check-gpu` on a GPU)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from fcos_core.engine import gpu_check
from fcos_core.layers import _ops

REPO = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location("check_gpu_tool", REPO / "tools" / "check_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_gpu = load_tool()


def test_without_gpu_it_says_so_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_gpu.main([]) == 0
    assert "no CUDA GPU visible" in capsys.readouterr().out


@pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")
def test_kernel_section_on_cpu_compares_with_the_references():
    rows = check_gpu.in_process_section("kernels", "cpu", smoke=True)
    assert [r.status for r in rows] == [gpu_check.PASS] * len(rows), rows
    assert any(r.check.startswith("nms keep lists") and "30/30" in r.value for r in rows)


def test_kernel_section_without_kernels_skips(monkeypatch):
    monkeypatch.setattr(_ops, "KERNEL_DEVICES", {op: frozenset() for op in _ops.OP_NAMES})
    rows = check_gpu.in_process_section("kernels", "cpu", smoke=True)
    assert {r.status for r in rows} == {gpu_check.SKIP}


def test_nms_comparison_catches_a_wrong_kernel(monkeypatch):
    """A kernel that drops the last kept box must make the NMS row fail."""
    if not _ops.HAS_EXT:
        pytest.skip("fcos_core._C not loaded")
    real = torch.ops.fcos.nms

    class Wrong:
        default = real.default

        def __call__(self, *args):
            return real(*args)[:-1]

    monkeypatch.setattr(torch.ops.fcos, "nms", Wrong())
    rows = gpu_check.nms_rows("cpu", num_sets=5)
    assert rows and all(r.status == gpu_check.FAIL and "differ" in r.value for r in rows), rows


@pytest.fixture
def no_process_group_left():
    """The DDP section creates a 1-process group in this process: destroy it afterwards so the
    other tests see a single process again."""
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def test_training_steps_on_cpu_pass_and_a_nan_loss_fails(monkeypatch, no_process_group_left):
    rows = check_gpu.in_process_section("train_mnv2", "cpu", smoke=True)
    assert [r.status for r in rows] == [gpu_check.PASS] * 3, rows
    assert rows[0].check == "process group" and rows[0].value == "gloo"
    assert all("DDP world 1" in r.note for r in rows[1:])
    monkeypatch.setattr(torch, "isfinite", lambda x: torch.zeros_like(x, dtype=torch.bool))
    (row,) = gpu_check.train_rows(check_gpu.QUICKSTART, "cpu", ("float32",), (64, 64), 1, 1, False)
    assert row.status == gpu_check.FAIL and "non-finite loss" in row.note


def test_a_check_that_raises_becomes_a_fail_row():
    def broken():
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    row = gpu_check.run_check("kernels", "x", broken)
    assert row.status == gpu_check.FAIL and "illegal memory access" in row.note


def test_child_timeout_is_killed_and_reported():
    code, out = check_gpu.run_child(
        [sys.executable, "-c", "print('started', flush=True); import time; time.sleep(60)"],
        timeout=3,
        log=lambda text: None,
    )
    assert code is None and "started" in out


def test_report_table_exit_status_and_budget(monkeypatch, tmp_path):
    calls = []

    def fake_child(name, args, timeout, log):
        calls.append((name, timeout))
        status = gpu_check.FAIL if name == "kernels" else gpu_check.PASS
        return [gpu_check.Row(name, "c", status, "v", "n", 0.1)]

    monkeypatch.setattr(check_gpu, "child_section", fake_child)
    argv = ["--cpu-smoke", "--out", str(tmp_path), "--sections", "extension", "kernels"]
    assert check_gpu.main(argv) == 1
    report = (tmp_path / "check_gpu.md").read_text()
    assert "| kernels | c | FAIL | v | n | 0.1 |" in report and "1 failed" in report
    data = json.loads((tmp_path / "check_gpu.json").read_text())
    assert [r["status"] for r in data["rows"]] == ["PASS", "FAIL"]
    assert calls[0] == ("extension", check_gpu.CAPS["extension"])
    # A spent budget: every section is a SKIP row and nothing runs.
    calls.clear()
    argv = ["--cpu-smoke", "--budget", "1", "--sections", "extension", "kernels"]
    assert check_gpu.main(argv) == 0 and calls == []


def test_smoke_run_end_to_end(tmp_path):
    """The real child processes, as CI runs them: every row passes on a CPU."""
    argv = ["--cpu-smoke", "--out", str(tmp_path), "--sections", "extension", "kernels"]
    assert check_gpu.main(argv) == (0 if _ops.HAS_EXT else 1)
    assert (tmp_path / "check_gpu.log").read_text().count("--run-section") == 2


def test_every_convention_argument_combination_of_the_nms_schema_is_tried():
    lib = torch.library.Library("fcos_check_gpu_test", "DEF")  # noqa: TOR901
    lib.define(
        "nms(Tensor boxes, Tensor scores, float iou_threshold, float offset=0., "
        "bool suppress_equal=False) -> Tensor"
    )
    op = torch.ops.fcos_check_gpu_test.nms.default
    assert gpu_check.nms_extra_arguments(op) == [
        ("offset", (0.0, 1.0)),
        ("suppress_equal", (False, True)),
    ]
    combos = list(gpu_check.convention_combinations(op))
    assert len(combos) == 4 and {"offset": 1.0, "suppress_equal": True} in combos


def test_pytest_summary_line_is_read_with_and_without_q():
    assert check_gpu.pytest_summary("..\n9 passed, 149 deselected in 11.55s\n") == (
        "9 passed, 149 deselected in 11.55s"
    )
    assert (
        check_gpu.pytest_summary("== 1 failed, 3 passed in 2.00s ==")
        == "1 failed, 3 passed in 2.00s"
    )
    assert check_gpu.pytest_summary("collection error") == ""
