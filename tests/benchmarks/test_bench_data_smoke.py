"""benchmarks/bench_data.py runs (few small images) and prints a rate line per source size."""

from __future__ import annotations

import re

RATE = r"(\d+\.\d) img/s"


def test_bench_data_quick_prints_positive_rates_and_workers_needed(run_benchmark):
    """One source row (decode rate), then one row per pipeline: the original float32 one and
    the uint8 one, each with its item and loader rates and its batch size in MB."""
    lines = run_benchmark("bench_data.py", "--quick")
    stdout = "\n".join(lines)
    assert re.match(r"reference: one GPU consumes \d+\.\d images/s", lines[0]), lines[0]
    rows = [line for line in lines if line.startswith("source ")]
    assert len(rows) == 1, stdout
    # 640x480 is resized to the default 800 short side: (3, 800, 1066)
    assert rows[0].startswith("source 640x480 -> tensor (3, 800, 1066): "), rows[0]
    assert float(re.search(RATE, rows[0]).group(1)) > 0, rows[0]
    pipelines = [line for line in lines if line.startswith("  ")]
    assert [p.split(":")[0].strip() for p in pipelines] == [
        "float32, normalised in the worker (before)",
        "uint8, normalised by the model (now)",
    ], stdout
    megabytes = []
    for row in pipelines:
        rates = [float(r) for r in re.findall(RATE, row)]
        assert len(rates) == 2 and all(r > 0 for r in rates), row
        assert int(re.search(r"workers needed per GPU: (\d+)", row).group(1)) >= 1
        megabytes.append(float(re.search(r"(\d+\.\d) MB/batch", row).group(1)))
    # The same padded batch (2, 3, 800, 1088): 4 bytes per value before, 1 now.
    assert megabytes == [19.9, 5.0], stdout
    assert re.search(r"model preprocessing on this CPU \d+\.\d ms/batch$", pipelines[1])
