"""benchmarks/bench_data.py runs (few small images) and prints a rate line per source size."""

from __future__ import annotations

import re

RATE = r"(\d+\.\d) img/s"


def test_bench_data_quick_prints_positive_rates_and_workers_needed(run_benchmark):
    lines = run_benchmark("bench_data.py", "--quick")
    stdout = "\n".join(lines)
    assert re.match(r"reference: one GPU consumes \d+\.\d images/s", lines[0]), lines[0]
    rows = [line for line in lines if line.startswith("source ")]
    assert len(rows) == 1, stdout
    # 640x480 is resized to the default 800 short side: (3, 800, 1066)
    assert rows[0].startswith("source 640x480 -> tensor (3, 800, 1066): "), rows[0]
    rates = [float(r) for r in re.findall(RATE, rows[0])]
    assert len(rates) == 3 and all(r > 0 for r in rates), rows[0]
    assert int(re.search(r"workers needed per GPU: (\d+)$", rows[0]).group(1)) >= 1
