"""Speed and memory of every implementation under test, against nn.CrossEntropyLoss and a
tensor copy measured in the same run; the reference's throughput; the harness's overhead.

Run only when asked (they skip otherwise, so `python -m pytest suites/` stays fast):

    python -m pytest suites/test_benchmarks.py --benchmark-only                 # quick sweep
    python -m pytest suites/test_benchmarks.py --benchmark-only --ls-bench-sizes full

Each measurement becomes an entry of results.json's `benchmarks` (median, IQR, rounds,
peak memory beyond the inputs and as a multiple of the logits, roofline fraction, ratio to
the builtin, threads); `--ls-baseline OLD/results.json` fails the run on a regression
(lsuite/benchmarking/regression.py). Measuring: lsuite/benchmarking/bench.py (timing.py, memory.py); generation and gating: lsuite/pytest_plugin/benchplugin.py.
"""

import time

import pytest

import reference
from lsuite.benchmarking import bench, bench_parallel, timing
from lsuite.catalogs import catalog
from lsuite.inputs.cases import Case, make_inputs


@pytest.mark.ls_bench("impls")
def test_speed_and_memory(ls_bench, point):
    ls_bench(point)


@pytest.mark.ls_bench("noop")
def test_harness_overhead_of_a_no_op(ls_bench, point):
    """A loss that returns a fixed scalar: what the harness itself adds to every median."""
    ls_bench(point, kind="harness_overhead")


REFERENCE_APIS = ("loss_and_grad", "iter_row_chunks")


def _reference_call(api: str, inputs):
    if api == "loss_and_grad":
        return lambda: reference.loss_and_grad(inputs.logits, inputs.target, inputs.spec)
    # streamed value and gradient, each chunk dropped once received (as a comparing caller)
    return lambda: sum(1 for _ in reference.iter_row_chunks(inputs.logits, inputs.target, inputs.spec))


@pytest.mark.ls_bench("reference")
@pytest.mark.parametrize("api", REFERENCE_APIS)
def test_reference_throughput(benchmark, ls_bench_record, ls_bench_sizes, api):
    """The float64 reference's value and gradient: what one conformance check costs."""
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled (--benchmark-disable or pytest-xdist)")
    n, k = bench.REFERENCE_SHAPE[ls_bench_sizes]
    inputs = make_inputs(catalog.by_name()[bench.BUILTIN], Case(N=n, K=k, dtype="float32"))
    run = _reference_call(api, inputs)
    started = time.perf_counter()
    run()
    rounds = timing.rounds_for(time.perf_counter() - started)
    benchmark.pedantic(run, rounds=rounds, warmup_rounds=0, iterations=1)
    stats = benchmark.stats.stats
    median = float(stats.median)
    entry = {
        "kind": "reference", "impl": f"reference.{api}", "device": "cpu", "dtype": "float32",
        "pass": "forward_backward", "n": n, "k": k, "median_s": median, "iqr_s": float(stats.iqr),
        "rounds": int(stats.rounds), "threads": reference.engine.THREADS,
        "rows_per_s": n / median, "elements_per_s": n * k / median,
        "logits_gb_per_s": n * k * 4 / median / 1e9,
        "peak_bytes": None, "peak_over_logits": None, "roofline_fraction": None,
        "ratio_to_builtin": None,
    }
    benchmark.extra_info.update(entry)
    ls_bench_record(entry)


@pytest.mark.ls_bench("hidden_states")
def test_fused_linear_speed_and_memory(ls_bench, point):
    """A hidden-states record (fused linear cross-entropy) at n x h x k against F.linear +
    nn.CrossEntropyLoss timed interleaved; its peak and the baseline path's over the logits
    it avoids (lsuite/benchmarking/bench.py, LINEAR_SIZES)."""
    ls_bench(point)


@pytest.mark.ls_bench("vocab_parallel")
@pytest.mark.parametrize("device", ("cpu", "cuda"))
@pytest.mark.parametrize("world", bench_parallel.WORLDS)
@pytest.mark.parametrize("pass_", bench_parallel.PASSES)
def test_vocab_parallel_speed_and_memory_per_rank(benchmark, ls_bench_record, ls_bench_sizes,
                                                  request, device, world, pass_):
    """Every vocab_parallel record under test on its rank group (lsuite/benchmarking/bench_parallel.py):
    each rank's time and peak memory, against nn.CrossEntropyLoss on the whole logits in one
    process; one entry per rank. pytest-benchmark's own figure is the whole measurement's."""
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled (--benchmark-disable or pytest-xdist)")
    from lsuite.pytest_plugin.stash import IMPLS
    from lsuite.running import distributed

    impls = [impl for impl in request.config.stash[IMPLS] if impl.input == "vocab_parallel"]
    if not impls:
        pytest.skip("no vocab_parallel record under test")
    if why := distributed.unavailable(device, world):
        pytest.skip(f"{distributed.backend_for(device)} world {world}: {why}")
    if why := bench_parallel.oversubscribed(device, world):
        pytest.skip(why)
    threads = request.config.getoption("ls_bench_threads")
    points = [(impl, n, k, dtype) for impl in impls for n, k, dtype in bench_parallel.SIZES[ls_bench_sizes]
              if device in impl.devices and dtype in impl.dtypes and k >= world]

    def measure_all():
        return [entry for impl, n, k, dtype in points
                for entry in bench_parallel.entries(impl, device, dtype, pass_, n, k, world, threads)]

    for entry in benchmark.pedantic(measure_all, rounds=1, iterations=1):
        ls_bench_record(entry)
