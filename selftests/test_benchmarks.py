"""The benchmarks' own helpers: the peak-memory tracker sees known allocations and frees,
the roofline is a ratio to the copy, the regression gate flags a 2x slowdown and not
noise, and a real run of suites/test_benchmarks.py records entries and gates on a baseline.
"""

import json
from pathlib import Path

import pytest
import torch

from lsuite import bench, memory, regression, timing

ROOT = Path(__file__).resolve().parents[1]
N, K = 256, 1000
NK_BYTES = N * K * 4  # an N x K float32 temporary


def test_memory_tracker_sees_an_n_by_k_temporary():
    def allocates():
        return torch.ones(N, K).sum()

    assert memory.peak_bytes(allocates) >= NK_BYTES


def test_memory_tracker_reports_nothing_for_a_no_op():
    logits = torch.randn(N, K)  # allocated before: an input, not the call's memory
    assert memory.peak_bytes(lambda: logits) < 1024


def test_memory_tracker_sees_frees():
    """Two N x K temporaries one after the other peak at one, not two."""
    def sequential():
        a = torch.ones(N, K)
        del a
        b = torch.ones(N, K)
        del b

    assert NK_BYTES <= memory.peak_bytes(sequential) < 1.5 * NK_BYTES


def test_recipe_with_a_one_hot_peaks_above_the_builtin():
    """The hidden N x K copies the peak-over-logits column exists to expose."""
    from lsuite.catalog import by_name

    peaks = {}
    for name in ("seed000_ce", "seed001_kldiv"):
        point = bench.Point(by_name()[name], "cpu", "float32", "forward_backward", N, K)
        work = bench.workload(point.impl, point)
        peaks[name] = memory.peak_bytes(work.run) / point.logits_bytes
    assert peaks["seed001_kldiv"] >= peaks["seed000_ce"] + 1.0, peaks


def test_roofline_fraction_is_the_copy_time_over_the_pass_time():
    assert bench.roofline_fraction("forward_backward", seconds=2.0, copy_s=1.0) == pytest.approx(0.5)
    assert bench.roofline_fraction("forward", seconds=1.0, copy_s=1.0) == pytest.approx(0.5)
    assert bench.roofline_fraction("forward", seconds=0.0, copy_s=1.0) is None


def test_interleaved_times_every_companion_before_each_round():
    """ABAB: one call of each companion, in order, then the timed call's own setup."""
    calls = []
    paired = timing.Interleaved(lambda: calls.append("setup"), "cpu",
                                {"copy": (lambda: calls.append("copy"), lambda: None),
                                 "builtin": (lambda x: calls.append(x), lambda: (("builtin",), {}))})
    for _ in range(3):
        assert paired.setup() is None
    assert calls == ["copy", "builtin", "setup"] * 3
    assert {name: len(s) for name, s in paired.seconds.items()} == {"copy": 3, "builtin": 3}
    assert timing.paired_ratio([2.0, 6.0, 3.0], [1.0, 2.0, 0.0]) == pytest.approx(2.5)


def _entry(impl="seed001_kldiv", ratio=3.0, peak=6.0, **changes):
    entry = {"impl": impl, "device": "cpu", "dtype": "float32", "pass": "forward_backward",
             "n": 1024, "k": 32000, "ratio_to_builtin": ratio, "peak_over_logits": peak}
    return dict(entry, **changes)


def test_regression_flags_a_doubled_ratio_naming_impl_shape_and_change():
    findings = regression.regressions([_entry(ratio=6.0)], [_entry(ratio=3.0)])
    assert [f.quantity for f in findings] == ["ratio_to_builtin"]
    message = findings[0].message()
    for words in ("seed001_kldiv", "n=1024 k=32000", "forward_backward", "3.00 -> 6.00", "+100%"):
        assert words in message, message


def test_regression_ignores_changes_inside_the_threshold_and_speedups():
    inside = 3.0 * (1 + regression.RATIO_THRESHOLD * 0.9)
    assert regression.regressions([_entry(ratio=inside)], [_entry(ratio=3.0)]) == []
    assert regression.regressions([_entry(ratio=1.5)], [_entry(ratio=3.0)]) == []
    assert regression.regressions([_entry(ratio=6.0, k=50257)], [_entry(ratio=3.0)]) == []  # unmatched


def test_regression_flags_new_n_by_k_temporaries():
    findings = regression.regressions([_entry(peak=8.0)], [_entry(peak=6.0)])  # two new N x K
    assert [f.quantity for f in findings] == ["peak_over_logits"]
    assert regression.regressions([_entry(peak=6.0 + regression.MEMORY_THRESHOLD * 0.9)],
                              [_entry(peak=6.0)]) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the event timer needs one")
def test_cuda_event_timer_records_one_time_per_call():
    x = torch.randn(1024, 1024, device="cuda")
    timer = timing.CudaEventTimer(lambda: x @ x)
    for _ in range(3):
        timer()
    assert len(timer.seconds) == 3 and all(s > 0 for s in timer.seconds)


SUBSET = "k1000 and forward_backward and (seed000_ce or seed001_kldiv) and cpu"


def _run(pytester, out, *args):
    result = pytester.runpytest_subprocess(
        str(ROOT / "suites" / "test_benchmarks.py"), f"--rootdir={ROOT}", "-c",
        str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", f"--ls-report-dir={out}",
        "--ls-bench-sizes", "quick", "-k", SUBSET, *args)
    path = out / "results.json"
    return result, (json.loads(path.read_text()) if path.exists() else None)


def test_benchmark_run_records_entries_and_gates_on_a_baseline(pytester):
    result, payload = _run(pytester, pytester.path / "first", "--benchmark-only")
    assert result.ret == 0, result.stdout.str()[-3000:]
    entries = {e["impl"]: e for e in payload["benchmarks"]}
    assert set(entries) == {"seed000_ce", "seed001_kldiv"}, payload["benchmarks"]
    assert entries["seed000_ce"]["ratio_to_builtin"] == 1.0
    slow = entries["seed001_kldiv"]
    assert slow["peak_over_logits"] > entries["seed000_ce"]["peak_over_logits"]
    assert slow["rounds"] >= timing.MIN_ROUNDS and slow["roofline_fraction"] > 0
    assert payload["environment"]["benchmark"]["torch_threads"] >= 1

    slow["ratio_to_builtin"] /= 10  # a baseline in which seed001 was 10x faster: a sure regression
    baseline = pytester.path / "baseline.json"
    baseline.write_text(json.dumps(payload))
    result, gated = _run(pytester, pytester.path / "second", "--benchmark-only",
                         f"--ls-baseline={baseline}")
    assert result.ret == 1, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["REGRESSION seed001_kldiv cpu float32 forward_backward n=1024 k=1000*"])
    gate = gated["benchmark_gate"]  # what the gate judged with and decided, for the report
    assert gate["ratio_threshold"] == regression.RATIO_THRESHOLD and gate["baseline"] == str(baseline)
    assert [(f["impl"], f["quantity"]) for f in gate["findings"]][:1] == [("seed001_kldiv", "ratio_to_builtin")]
    assert payload["benchmark_gate"]["findings"] is None  # the first run had no baseline


def test_benchmarks_skip_unless_asked(pytester):
    result = pytester.runpytest_subprocess(
        str(ROOT / "suites" / "test_benchmarks.py"), f"--rootdir={ROOT}", "-c",
        str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", "-rs",
        f"--ls-report-dir={pytester.path / 'out'}", "-k", SUBSET)
    assert result.ret in (0, 5), result.stdout.str()[-3000:]
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*benchmarks run only when asked*"])
