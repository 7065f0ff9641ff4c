"""GPU self-test, to run the first time a GPU is present (``make check-gpu``).

    python3 tools/check_gpu.py [--out DIR] [--budget 420]   # on a machine with a GPU
    python3 tools/check_gpu.py --cpu-smoke                   # CI: the same code, tiny, on CPU

It builds nothing: build the extension first (``FORCE_CUDA=1 pip install --no-build-isolation -e
.`` or ``FORCE_CUDA=1 python setup.py build_ext --inplace``); the "extension" rows say whether the
CUDA kernels are there. Sections, each in its own process (a CUDA error cannot poison the next
one) under its own time cap and a global budget: extension state; CUDA kernels against the CPU
kernels (NMS keep lists on 300 sets per convention, focal loss forward/backward, opcheck);
training steps of the imprv R-50 and the MNV2 SyncBN configs in float16 + GradScaler and
bfloat16; the quickstart for ~2 minutes with its AP; ``benchmarks/bench_model.py`` on CUDA;
``pytest -m cuda``; 2-process NCCL DDP when 2+ GPUs are visible. One table at the end (also
``DIR/check_gpu.md``, ``DIR/check_gpu.json`` and every section's output in
``DIR/check_gpu.log``); the exit status is 1 when any row failed. Without a GPU (and without
--cpu-smoke) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch

from fcos_core.engine.gpu_check import FAIL, PASS, SKIP, Row

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = os.path.join(REPO, "configs")
R50 = os.path.join(CONFIGS, "fcos", "fcos_imprv_R_50_FPN_1x.yaml")
MNV2 = os.path.join(CONFIGS, "fcos", "fcos_syncbn_bs32_MNV2_FPN_1x.yaml")
QUICKSTART = os.path.join(CONFIGS, "quickstart", "fcos_quickstart.yaml")
QUICKSTART_MIN_AP = 0.4  # the 2-core CPU recipe reaches 0.687 with the same schedule
# Section -> seconds it may take at most (the global budget may cut it shorter).
CAPS = {"extension": 60, "kernels": 120, "train_r50": 100, "train_mnv2": 80,
        "quickstart": 210, "bench": 150, "pytest_cuda": 90, "ddp2": 120}  # fmt: skip
MIN_SECTION_SECONDS = 20


def in_process_section(name: str, device: str, smoke: bool) -> list[Row]:
    """The sections that run inside a child process of this script."""
    from fcos_core.engine import gpu_check as g

    size, steps = ((64, 96), 2) if smoke else ((512, 640), 4)
    amps = ("float32", "bfloat16") if device == "cpu" else ("float16", "bfloat16")
    if name == "extension":
        return g.extension_rows(device)
    if name == "kernels":
        return (g.nms_rows(device, 30 if smoke else g.NMS_SETS) + g.focal_rows(device)
                + g.opcheck_rows(device))  # fmt: skip
    if name == "train_r50":
        config = QUICKSTART if smoke else R50
        return g.train_rows(config, device, amps, size, 2, steps, ddp=False)
    if name == "train_mnv2":
        config = QUICKSTART if smoke else MNV2
        return g.train_rows(config, device, amps, size, 2, steps, ddp=True)
    raise ValueError(f"unknown section {name!r}")


def run_child(cmd: list[str], timeout: float, log: Callable[[str], None],
              env: dict[str, str] | None = None) -> tuple[int | None, str]:  # fmt: skip
    """Run ``cmd``; returns (exit status or None on timeout, its output), logging the output."""
    log(f"$ {' '.join(cmd)}  (timeout {timeout:.0f} s)")
    # Own process group: on a timeout its data-loader workers / torchrun ranks go too.
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
    log(out)
    return code, out


def tail(text: str, chars: int = 200) -> str:
    return " ".join(text.strip().split())[-chars:]


def child_section(name: str, args: argparse.Namespace, timeout: float, log) -> list[Row]:
    """An in-process section in a fresh interpreter; its rows come back as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = os.path.join(tmp, "rows.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--run-section", name,
               "--device", args.device, "--rows-json", rows_file]  # fmt: skip
        code, out = run_child(cmd + (["--cpu-smoke"] if args.cpu_smoke else []), timeout, log)
        if os.path.exists(rows_file):
            with open(rows_file) as f:
                rows = [Row(**r) for r in json.load(f)]
            if code not in (0, None) and rows:
                return rows
        else:
            rows = []
        if code is None:
            rows.append(Row(name, "section", FAIL, "", f"timed out after {timeout:.0f} s"))
        elif not rows:
            rows.append(Row(name, "section", FAIL, f"exit {code}", tail(out)))
        return rows


def quickstart_section(args: argparse.Namespace, timeout: float, log) -> list[Row]:
    """``tools/quickstart.py`` for ~2 minutes of training on the GPU, data in a temp folder."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, FCOS_DATA_DIR=os.path.join(tmp, "data"))
        out_dir = os.path.join(tmp, "quickstart")
        cmd = [sys.executable, os.path.join(REPO, "tools", "quickstart.py"), "--fresh",
               "--max-minutes", str(args.quickstart_minutes), "--output-dir", out_dir,
               "MODEL.DEVICE", args.device, "DATALOADER.NUM_WORKERS", "6"]  # fmt: skip
        start = time.time()
        code, out = run_child(cmd, timeout, log, env)
        if args.out:  # the small files only (no checkpoints)
            for name in ("log.txt", "metrics.json", "loss_curve.png"):
                if os.path.exists(os.path.join(out_dir, name)):
                    shutil.copy(
                        os.path.join(out_dir, name), os.path.join(args.out, f"quickstart_{name}")
                    )
    seconds = round(time.time() - start, 1)
    found = re.search(r"val split: AP (\d\.\d+)\s+AP50 (\d\.\d+)\s+AP75 (\d\.\d+)", out)
    timing = re.search(r"Quickstart finished in .*", out)
    if code != 0 or not found:
        why = "timed out" if code is None else f"exit {code}"
        return [Row("quickstart", "train + eval", FAIL, why, tail(out), seconds)]
    ap = float(found.group(1))
    status = PASS if ap >= QUICKSTART_MIN_AP else FAIL
    value = f"AP {found.group(1)} AP50 {found.group(2)} AP75 {found.group(3)}"
    note = (timing.group(0) if timing else "") + f" (pass: AP >= {QUICKSTART_MIN_AP})"
    return [Row("quickstart", f"{args.quickstart_minutes} min on {args.device}", status, value,
                note, seconds)]  # fmt: skip


def bench_section(args: argparse.Namespace, timeout: float, log) -> list[Row]:
    """``benchmarks/bench_model.py`` on CUDA; its own table goes into the report as it is."""
    cmd = [sys.executable, os.path.join(REPO, "benchmarks", "bench_model.py"), "--device",
           args.device, "--fast-autocast", "float16", "--repeats", "3",
           "--threads", "8"]  # fmt: skip
    start = time.time()
    code, out = run_child(cmd, timeout, log)
    table = [line for line in out.splitlines() if line.startswith("|")]
    args.extra_tables.append(("benchmarks/bench_model.py " + " ".join(cmd[2:]), table))
    seconds = round(time.time() - start, 1)
    if code != 0 or not table:
        why = "timed out" if code is None else f"exit {code}"
        return [Row("bench", "bench_model.py", FAIL, why, tail(out), seconds)]
    return [Row("bench", "bench_model.py", PASS, f"{len(table) - 2} rows", "table below", seconds)]


def pytest_summary(out: str) -> str:
    """pytest's last count line ("9 passed, 2 deselected in 11.55s"), with or without -q."""
    pattern = r"^=*\s*(\d+ (?:passed|failed|error|skipped|deselected).* in [\d.]+s)"
    found = re.findall(pattern, out, re.M)
    return found[-1] if found else ""


def pytest_section(args: argparse.Namespace, timeout: float, log) -> list[Row]:
    """The repository's CUDA-marked tests (skipped elsewhere)."""
    tests = ["tests/layers", "tests/modeling/test_backbone.py", "tests/device"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *tests]
    start = time.time()
    code, out = run_child(cmd, timeout, log)
    status = PASS if code == 0 else FAIL
    value = "timed out" if code is None else pytest_summary(out)
    return [Row("pytest", "pytest -m cuda", status, value, "" if code == 0 else tail(out),
                round(time.time() - start, 1))]  # fmt: skip


def ddp2_section(args: argparse.Namespace, timeout: float, log) -> list[Row]:
    """Two NCCL processes training the quickstart model with SyncBN for 20 iterations."""
    if torch.cuda.device_count() < 2:
        return [Row("ddp2", "2-process NCCL DDP", SKIP, "", f"{torch.cuda.device_count()} GPU")]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, FCOS_DATA_DIR=tmp)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               os.path.join(REPO, "tools", "train_net.py"), "--config-file", QUICKSTART,
               "--skip-test", "SOLVER.MAX_ITER", "20", "SOLVER.FIT_TO_MAX_MINUTES", "False",
               "MODEL.USE_SYNCBN", "True", "OUTPUT_DIR", os.path.join(tmp, "out")]  # fmt: skip
        start = time.time()
        code, out = run_child(cmd, timeout, log, env)
    ok = code == 0 and "nccl" in out.lower()
    return [Row("ddp2", "2-process NCCL DDP + SyncBN", PASS if ok else FAIL,
                "20 iterations" if ok else f"exit {code}", "" if ok else tail(out),
                round(time.time() - start, 1))]  # fmt: skip


SUBPROCESS_SECTIONS = {"quickstart": quickstart_section, "bench": bench_section,
                       "pytest_cuda": pytest_section, "ddp2": ddp2_section}  # fmt: skip
ORDER = ["extension", "kernels", "train_r50", "train_mnv2", "quickstart", "bench",
         "pytest_cuda", "ddp2"]  # fmt: skip
SMOKE_ORDER = ["extension", "kernels", "train_r50", "train_mnv2"]


def format_table(rows: list[Row]) -> str:
    """The markdown table of all rows."""
    lines = ["| section | check | result | value | note | s |", "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r.section, r.check, r.status, r.value, r.note.replace("|", "/"), f"{r.seconds}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment_line(device: str) -> str:
    """Torch, CUDA, GPU name(s) and the extension's backends."""
    from fcos_core.layers import _ops

    gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    where = f"{device} [{gpus}]" if gpus else device
    return (f"torch {torch.__version__} (CUDA {torch.version.cuda}), device {where}; "
            f"fcos_core._C: {_ops.extension_summary()}")  # fmt: skip


def run_all(args: argparse.Namespace) -> list[Row]:
    """Every section in order, each capped, inside the global budget."""
    deadline = time.time() + args.budget
    log_path = os.path.join(args.out, "check_gpu.log") if args.out else None
    log_file = open(log_path, "w") if log_path else None  # noqa: SIM115 - closed below

    def log(text: str) -> None:
        if log_file:
            log_file.write(text + "\n")
            log_file.flush()

    rows: list[Row] = []
    try:
        for name in args.sections:
            left = deadline - time.time()
            if left < MIN_SECTION_SECONDS:
                rows.append(Row(name, "section", SKIP, "", f"budget of {args.budget:.0f} s used"))
                continue
            timeout = min(CAPS[name], left)
            print(f"check-gpu: {name} (at most {timeout:.0f} s) ...", flush=True)
            section = SUBPROCESS_SECTIONS.get(name)
            new = (
                section(args, timeout, log) if section else child_section(name, args, timeout, log)
            )
            for row in new:
                print(f"  {row.status}  {row.check}: {row.value} {row.note}"[:240], flush=True)
            rows += new
    finally:
        if log_file:
            log_file.close()
    return rows


def write_report(args: argparse.Namespace, header: str, rows: list[Row], seconds: float) -> str:
    """The whole report as markdown; also written to --out when given."""
    failed = sum(r.status == FAIL for r in rows)
    parts = [f"# check-gpu ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "", header,
             "", format_table(rows), "",
             f"{len(rows)} rows, {failed} failed, {seconds:.0f} s in all."]  # fmt: skip
    for title, table in args.extra_tables:
        parts += ["", f"## {title}", "", *table]
    report = "\n".join(parts) + "\n"
    if args.out:
        with open(os.path.join(args.out, "check_gpu.md"), "w") as f:
            f.write(report)
        with open(os.path.join(args.out, "check_gpu.json"), "w") as f:
            json.dump({"header": header, "seconds": seconds, "failed": failed,
                       "rows": [r.as_dict() for r in rows],
                       "tables": dict(args.extra_tables)}, f, indent=1)  # fmt: skip
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="GPU self-test (see the module docstring)")
    p.add_argument("--out", help="folder for check_gpu.md / .json / .log")
    p.add_argument("--budget", type=float, default=420.0, help="seconds for all sections")
    p.add_argument("--device", default="cuda", help="cuda or cuda:N (cpu with --cpu-smoke)")
    p.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="run the in-process sections on the CPU at tiny sizes (CI)",
    )
    p.add_argument("--sections", nargs="+", choices=ORDER, help="default: all (smoke: some)")
    p.add_argument("--quickstart-minutes", type=float, default=2.0)
    p.add_argument("--run-section", choices=ORDER, help=argparse.SUPPRESS)
    p.add_argument("--rows-json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cpu_smoke:
        args.device = "cpu"
    if args.out:  # children run in the repository root
        args.out = os.path.abspath(args.out)
    args.sections = args.sections or (SMOKE_ORDER if args.cpu_smoke else ORDER)
    args.extra_tables = []
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_section:  # child process: one in-process section, rows to --rows-json
        rows = in_process_section(args.run_section, args.device, args.cpu_smoke)
        with open(args.rows_json, "w") as f:
            json.dump([r.as_dict() for r in rows], f)
        return 0
    if not args.cpu_smoke and not torch.cuda.is_available():
        print(
            f"check-gpu: no CUDA GPU visible (torch {torch.__version__}, CUDA "
            f"{torch.version.cuda}); nothing to check. --cpu-smoke runs the CPU part."
        )
        return 0
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    start = time.time()
    header = environment_line(args.device)
    print(f"check-gpu: {header}", flush=True)
    rows = run_all(args)
    print("\n" + write_report(args, header, rows, time.time() - start), flush=True)
    return 1 if any(r.status == FAIL for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
