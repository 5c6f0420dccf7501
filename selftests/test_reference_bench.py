"""`python -m reference.bench` runs end to end on a tiny problem and prints every figure."""

from __future__ import annotations

from reference import bench, engine


def test_bench_prints_throughput_and_peak_memory_for_both_modes(capsys):
    threads = engine.THREADS
    try:
        assert bench.main(["--rows", "6", "--classes", "50", "--repeats", "1", "--threads", "1"]) == 0
    finally:
        engine.set_threads(threads)
    out = capsys.readouterr().out
    assert "6 x 50 float32 logits" in out and "threads=1" in out
    for mode in ("value (loss)", "value+grad (iter_row_chunks)"):
        line = next(line for line in out.splitlines() if mode in line)
        assert "GB/s" in line and "peak extra memory" in line and "x logits" in line
