"""benchmarks/bench_ops.py runs end to end (tiny sizes) and prints its table."""

from __future__ import annotations


def test_bench_ops_quick_prints_the_table(run_benchmark):
    lines = run_benchmark("bench_ops.py", "--quick", timeout=180)
    assert any(line.startswith("| op | size | device |") for line in lines)
    assert any(line.startswith("| nms | 200 boxes") and "| cpu |" in line for line in lines)
    focal = [line for line in lines if line.startswith("| focal fwd+bwd | 500 x 8 | cpu |")]
    assert len(focal) == 1
    assert focal[0].count("|") == 9
