"""The benchmarks' own helpers: the peak-memory tracker sees known allocations and frees,
the roofline is a ratio to the copy, the regression gate flags a 2x slowdown and not
noise, and a real run of suites/test_benchmarks.py records entries and gates on a baseline.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lsresults import benchdiff
from lsuite.benchmarking import bench, instructions, measuring, memory, regression, timing

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


def test_memory_replay_counts_only_blocks_the_call_allocated():
    """A free of a block allocated before the call (an input) lowers nothing; a block
    reallocated at a freed address counts once."""
    events = [(1, 100), (9, -100), (2, 100), (1, -100), (3, 50), (2, -100), (3, -50)]
    assert memory.cpu_peak_of(events) == 200
    assert memory.cpu_peak_of([(9, -100), (1, 10)]) == 10


def test_a_backward_peaks_the_same_in_every_call():
    """The backward of a recipe whose forward saved two N x K tensors: the profiler reported
    their frees only in some calls (when it remembered a block's size at that address from
    an earlier profiled call), which gave this point a peak of 2 logits in the first call
    and 1 in every later one; replayed by address, every call agrees."""
    from lsuite.catalogs.catalog import by_name

    point = bench.Point(by_name()["seed000_quiz_exclusive"], "cpu", "float32", "backward", 1024, 8192)
    work = bench.workload(point.impl, point)
    peaks = {memory.peak_bytes(work.run, *timing.call_args(work.setup)) // point.logits_bytes
             for _ in range(5)}
    assert peaks == {2}, peaks


def test_recipe_with_a_one_hot_peaks_above_the_builtin():
    """The hidden N x K copies the peak-over-logits column exists to expose."""
    from lsuite.catalogs.catalog import by_name

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


def _entry(impl="seed001_kldiv", ratio=3.0, peak=6.0, samples=None, **changes):
    entry = {"impl": impl, "device": "cpu", "dtype": "float32", "pass": "forward_backward",
             "n": 1024, "k": 32000, "ratio_to_builtin": ratio, "peak_over_logits": peak}
    if samples is not None:
        entry["ratio_samples"] = list(samples)
    return dict(entry, **changes)


def _rounds(ratio, spread=0.03, n=12, seed=0):
    """Per-round ratios around `ratio`, log-normal with sigma `spread`."""
    return list(ratio * np.exp(np.random.default_rng(seed).normal(0.0, spread, n)))


def test_gate_flags_a_significant_slowdown_beyond_the_effect_size_with_its_interval():
    slow = 1 + benchdiff.RATIO_THRESHOLD + 0.3  # beyond the effect size the gate needs
    findings = regression.regressions([_entry(samples=_rounds(3.0 * slow, seed=1))],
                                      [_entry(samples=_rounds(3.0, seed=2))])
    assert [f.quantity for f in findings] == ["ratio_to_builtin"]
    message = findings[0].message()
    for words in ("seed001_kldiv", "n=1024 k=32000", "forward_backward", "slower: +", "p<", "could detect"):
        assert words in message, message
    pair = benchdiff.diff([_entry(samples=_rounds(3.0, seed=2))], [_entry(samples=_rounds(3.0 * slow, seed=1))]).pairs[0]
    assert pair.speed.low < slow - 1 < pair.speed.high and pair.speed.detectable < slow - 1


def test_gate_needs_both_significance_and_effect_size():
    base = _entry(samples=_rounds(3.0, seed=2))
    small = _entry(samples=_rounds(3.0 * 1.2, spread=0.005, seed=1))  # significant, but +20%
    # beyond the effect size, but noise this large
    noisy = _entry(samples=_rounds(3.0 * (1 + benchdiff.RATIO_THRESHOLD + 0.1), spread=1.0, n=8, seed=3))
    quiet = _entry(samples=_rounds(3.0, spread=0.005, seed=2))
    assert regression.regressions([small], [quiet]) == []
    assert regression.regressions([noisy], [base]) == []
    assert regression.regressions([_entry(samples=_rounds(2.0, seed=1))], [base]) == []  # faster


def test_detectable_slowdown_grows_with_the_noise_and_shrinks_with_the_rounds():
    quiet, loud = benchdiff.detectable_alone(_rounds(1, 0.01, 20)), benchdiff.detectable_alone(_rounds(1, 1.0, 20))
    assert quiet == pytest.approx(benchdiff.RATIO_THRESHOLD) and loud > benchdiff.RATIO_THRESHOLD
    assert benchdiff.detectable_alone(_rounds(1, 1.0, 40)) < loud
    assert benchdiff.detectable_alone([1.0, 1.1, 0.9]) == math.inf  # 3 rounds can prove nothing


def test_entries_without_samples_fall_back_to_the_old_rule():
    assert [f.quantity for f in regression.regressions([_entry(ratio=6.0)], [_entry(ratio=3.0)])] == [
        "ratio_to_builtin"]
    inside = 3.0 * (1 + benchdiff.NO_SAMPLES_RATIO_THRESHOLD * 0.9)
    assert regression.regressions([_entry(ratio=inside)], [_entry(ratio=3.0)]) == []
    assert regression.regressions([_entry(ratio=6.0, k=50257)], [_entry(ratio=3.0)]) == []  # unmatched
    mixed = regression.regressions([_entry(ratio=6.0, samples=_rounds(6.0))], [_entry(ratio=3.0)])
    assert "no samples" in mixed[0].message()


def test_instruction_counts_are_judged_by_their_relative_change_and_never_against_time():
    counted = dict(measure="instructions", instructions=1_000_000)
    grown = dict(counted, instructions=1_000_000 * (1 + 2 * benchdiff.INSTRUCTION_THRESHOLD))
    same = dict(counted, instructions=1_000_000 * (1 + benchdiff.INSTRUCTION_THRESHOLD / 2))
    assert [f.quantity for f in regression.regressions([_entry(**grown)], [_entry(**counted)])] == ["instructions"]
    assert regression.regressions([_entry(**same)], [_entry(**counted)]) == []
    assert regression.regressions([_entry(ratio=9.0, **grown)], [_entry(ratio=3.0)]) == []  # time vs count


def test_regression_flags_one_new_logits_sized_buffer_and_not_less():
    findings = regression.regressions([_entry(peak=7.0)], [_entry(peak=6.0)])  # one new N x K
    assert [f.quantity for f in findings] == ["peak_over_logits"]
    assert regression.regressions([_entry(peak=6.0 + regression.MEMORY_THRESHOLD * 0.9)],
                                  [_entry(peak=6.0)]) == []


def test_same_commit_comparison_counts_every_ordered_pair():
    runs = [[_entry(samples=_rounds(3.0, seed=s))] for s in range(3)]
    found = regression.same_commit(runs)
    assert (found["pairs"], found["entries"], found["alarms"]) == (6, 6, [])


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
    slow["ratio_samples"] = [r / 10 for r in slow["ratio_samples"]]
    baseline = pytester.path / "baseline.json"
    baseline.write_text(json.dumps(payload))
    result, gated = _run(pytester, pytester.path / "second", "--benchmark-only",
                         f"--ls-baseline={baseline}")
    assert result.ret == 1, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["REGRESSION seed001_kldiv cpu float32 forward_backward n=1024 k=1000*"])
    gate = gated["benchmark_gate"]  # what the gate judged with and decided, for the report
    assert gate["ratio_threshold"] == regression.RATIO_THRESHOLD and gate["baseline"] == str(baseline)
    assert gate["alpha"] == benchdiff.ALPHA
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


# ------------------------------------------------------------------ benchmark mutants

SLOW = ROOT / "selftests" / "impls" / "slow.py"
# Two points of the quick sweep: the forward and forward+backward at 1024 x 1000 float32,
# where the mutants cost +22% (the extra clone's forward+backward) to +230% (float64's
# forward) in time on this machine (docs/benchmarks.md).
MUTANT_POINT = "candidate and cpu and float32 and forward and k1000"


def _run_impl(pytester, out, record, *args, point=MUTANT_POINT):
    result = pytester.runpytest_subprocess(
        str(ROOT / "suites" / "test_benchmarks.py"), f"--rootdir={ROOT}", "-c",
        str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", f"--ls-report-dir={out}",
        "--ls-bench-sizes", "quick", "--ls-impl", f"{SLOW}:{record}", "-k", point, *args)
    path = out / "results.json"
    return result, (json.loads(path.read_text()) if path.exists() else None)


def test_benchmark_mutants_compute_what_the_baseline_computes():
    """They are correct: only their cost differs (the gate must judge cost, not values)."""
    from lsuite.record.records import BuildConfig
    from selftests.impls import slow

    logits, target = torch.randn(64, 50, dtype=torch.float64), torch.randint(0, 50, (64,))
    cfg = BuildConfig(eps=0.1, reduction="mean", num_classes=50, device="cpu", dtype=torch.float64,
                      weight=None, ignore_index=None)
    expected = slow.BASELINE.build(cfg)(logits, target)
    for name, impl in slow.MUTANTS.items():
        torch.testing.assert_close(impl.build(cfg)(logits, target), expected, msg=name)


def test_gate_flags_every_benchmark_mutant_and_nothing_on_the_same_commit(pytester):
    """A baseline run of the unmutated implementation; a second one of the same code has no
    memory finding, and each mutant, under the same name, fails the gate (exit 1) by memory:
    each holds one more logits-sized buffer at the forward's peak. Only the deterministic
    decisions are asserted here (allocator peaks): whether timing also flags a mutant depends
    on the machine's load, so the timing decisions are measured and written in docs/benchmarks.md
    (Benchmarks), never enforced by a timed unit test; every entry must still carry the
    per-round samples and the detectable slowdown that decision is made from."""
    result, first = _run_impl(pytester, pytester.path / "base", "BASELINE", "--benchmark-only")
    assert result.ret == 0 and len(first["benchmarks"]) == 2, result.stdout.str()[-3000:]
    assert len(first["benchmarks"][0]["ratio_samples"]) >= timing.MIN_ROUNDS
    baseline = pytester.path / "base" / "results.json"
    result, again = _run_impl(pytester, pytester.path / "again", "BASELINE", "--benchmark-only",
                              f"--ls-baseline={baseline}")
    findings = again["benchmark_gate"]["findings"]
    assert "peak_over_logits" not in {f["quantity"] for f in findings}, findings
    for name in ("EXTRA_CLONE", "SECOND_LOG_SOFTMAX", "FLOAT64", "ONE_HOT"):
        result, mutant = _run_impl(pytester, pytester.path / name, name, "--benchmark-only",
                                   f"--ls-baseline={baseline}")
        found = {f["quantity"] for f in mutant["benchmark_gate"]["findings"]}
        assert result.ret == 1 and "peak_over_logits" in found, (name, found)
        assert all(e.get("detectable_slowdown") is not None for e in mutant["benchmarks"]
                   if e.get("ratio_samples"))


@pytest.mark.parametrize("n, k, dtype", [(n, k, dtype) for n, k, dtypes in bench.SIZES["quick"]
                                         for dtype in dtypes])
def test_memory_gate_flags_one_logits_sized_buffer_and_never_the_same_code(n, k, dtype):
    """At every quick-sweep size, the forward of the extra-clone mutant (one more
    logits-sized buffer alive at the peak) is flagged against the baseline, and the
    baseline measured again is identical."""
    from selftests.impls import slow

    peaks = {}
    for name, impl in (("base", slow.BASELINE), ("again", slow.BASELINE), ("clone", slow.EXTRA_CLONE)):
        point = bench.Point(impl, "cpu", dtype, "forward", n, k)
        peaks[name] = measuring.peak(bench.workload(impl, point), point) / point.logits_bytes
    base, again, clone = (_entry(peak=peaks[name]) for name in ("base", "again", "clone"))
    assert peaks["base"] == peaks["again"], peaks
    assert regression.regressions([again], [base]) == []
    assert [f.quantity for f in regression.regressions([clone], [base])] == ["peak_over_logits"], peaks


@pytest.mark.skipif(bool(reason := instructions.unavailable()),
                    reason=f"deterministic mode unavailable: {reason}")
def test_instruction_counts_repeat_and_flag_every_benchmark_mutant(pytester):
    """Deterministic mode on one tiny point (128 x 1000, forward+backward), one valgrind
    session per run (about 25 s each on a quiet machine): the same code counted again is not
    flagged, and every benchmark mutant is, by its instruction count: the extra clone (about
    +2%, a change that timing on a shared machine can miss), the second log_softmax, the
    float64 round trip and the one-hot target (+30% to +150%). Counts are deterministic, so
    this decision is asserted; the whole sweep's repeatability is measured (docs/benchmarks.md,
    Benchmarks)."""
    from selftests.impls import slow

    counted = ("--ls-bench-measure", "instructions")
    one = MUTANT_POINT.replace("forward", "forward_backward")
    result, first = _run_impl(pytester, pytester.path / "base", "BASELINE", *counted, point=one)
    assert result.ret == 0, result.stdout.str()[-3000:]
    (entry,) = first["benchmarks"]
    assert entry["measure"] == "instructions" and entry["n"] == bench.INSTRUCTION_ROWS
    assert entry["instructions"] > 0 and entry["ratio_to_builtin"] == pytest.approx(1.0, rel=0.01)
    baseline = pytester.path / "base" / "results.json"
    result, again = _run_impl(pytester, pytester.path / "again", "BASELINE", *counted,
                              f"--ls-baseline={baseline}", point=one)
    assert result.ret == 0 and again["benchmark_gate"]["findings"] == [], again["benchmark_gate"]
    (repeat,) = again["benchmarks"]
    assert abs(repeat["instructions"] / entry["instructions"] - 1) < benchdiff.INSTRUCTION_THRESHOLD
    for name in slow.MUTANTS:
        result, mutant = _run_impl(pytester, pytester.path / name, name, *counted,
                                   f"--ls-baseline={baseline}", point=one)
        found = {f["quantity"] for f in mutant["benchmark_gate"]["findings"]}
        assert result.ret == 1 and "instructions" in found, (name, mutant["benchmark_gate"])


def test_cpu_vocab_parallel_worlds_beyond_the_cores_skip_with_the_reason(monkeypatch):
    """More CPU ranks than cores would time each other; CUDA ranks and worlds that fit run."""
    from lsuite.benchmarking import bench_parallel, machine

    monkeypatch.setattr(machine, "cores", lambda: 2)
    assert "world 4 on 2 CPU cores" in bench_parallel.oversubscribed("cpu", 4)
    assert bench_parallel.oversubscribed("cpu", 2) is None
    assert bench_parallel.oversubscribed("cuda", 4) is None
