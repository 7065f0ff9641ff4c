"""benchmarks/bench_model.py runs end to end (tiny sizes, one repetition) and prints every row."""

from __future__ import annotations

import re

# Rows --quick --fast-autocast bfloat16 --train-autocast bfloat16 must print, and whether each
# has a torchvision column.
EXPECTED_ROWS = {
    "inference float32 b1 128x192": True,
    "fast path (float32) b1 128x192": True,
    "fast path (bfloat16) b1 128x192": True,
    "floor float32 b1 128x192": False,
    "floor bfloat16 b1 128x192": False,
    "train step float32 b2 128x160": True,
    "train step bfloat16 b2 128x160": True,
    "peak RSS inference b1 128x192": True,
}
NUMBER = r"\d+\.\d"


def test_bench_model_quick_prints_a_row_per_measurement(run_benchmark):
    lines = run_benchmark(
        "bench_model.py", "--quick", "--fast-autocast", "bfloat16", "--train-autocast", "bfloat16"
    )
    stdout = "\n".join(lines)
    assert any(line.startswith("| measurement | ours min / median |") for line in lines)
    rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ")}
    for name, has_theirs in EXPECTED_ROWS.items():
        assert name in rows, f"row {name!r} missing from:\n{stdout}"
        cells = [c.strip() for c in rows[name].strip("|").split("|")]
        assert len(cells) == 5, rows[name]
        assert re.match(f"{NUMBER}+ / {NUMBER}+ (ms|MiB)$", cells[1]), rows[name]
        if has_theirs:
            assert re.match(f"{NUMBER}+ / {NUMBER}+ (ms|MiB)$", cells[2]), rows[name]
            assert float(cells[3]) > 0.0, rows[name]
        else:
            assert cells[2] == "-" and cells[3] == "-", rows[name]
    for dtype in ("float32", "bfloat16"):
        agreement = rows[f"fast path ({dtype}) b1 128x192"].split("|")[5].strip()
        assert re.match(r"\d+\.\d% of float32 dets matched$", agreement), agreement
    for dtype, measured in (
        ("float32", "inference float32 b1"),
        ("bfloat16", "fast path (bfloat16) b1"),
    ):
        note = rows[f"floor {dtype} b1 128x192"].split("|")[5]
        assert re.search(rf"ours / floor: .*{re.escape(measured)} {NUMBER}+x", note), note
