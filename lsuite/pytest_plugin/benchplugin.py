"""pytest hooks and the fixture of the benchmarks (suites/test_benchmarks.py). Measuring
lives in lsuite.benchmarking.bench (with lsuite.benchmarking.timing and lsuite.benchmarking.memory), the machine's description in
lsuite.benchmarking.machine, the regression gate in lsuite.benchmarking.regression; this module only wires.

A benchmark is a test marked `@pytest.mark.ls_bench(what)` taking the fixture `point`:
generated per implementation under test (the same `config.stash[IMPLS]` as the checks) ×
size of the sweep × dtype × device × pass (the builtin first at every point). Each
measures its ratio to the builtin and its roofline with the builtin and a copy interleaved
round by round (lsuite.benchmarking.timing.Interleaved). `ls_bench("hidden_states")` generates the
points of the hidden-states records (fused linear cross-entropy) over bench.LINEAR_SIZES,
each measured against F.linear + nn.CrossEntropyLoss (bench.LINEAR_BUILTIN).

Benchmarks run only when asked: with pytest-benchmark's `--benchmark-only`, or with
`--ls-bench-sizes` given explicitly. Otherwise they skip with that reason, so
`python -m pytest suites/` (the correctness gate) stays fast; `--benchmark-skip` skips
them as usual. Under pytest-xdist pytest-benchmark disables itself, and they skip.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lsuite.benchmarking import bench, machine, measuring, regression, timing
from lsuite.catalogs import catalog, loading
from lsuite.pytest_plugin import results
from lsuite.pytest_plugin.stash import BASELINE, COLLECTOR, CUDA, IMPLS
from lsuite.record.records import LOGITS_INPUTS

STATE = pytest.StashKey[measuring.State]()
FINDINGS = pytest.StashKey[list]()
HERE = pytest.StashKey[list]()  # the records benchmarks time, built in this process
ALLOCATOR = pytest.StashKey[str]()  # what pin_allocator did (results.json environment.benchmark)
NOT_ASKED = ("benchmarks run only when asked: pass --benchmark-only, or --ls-bench-sizes "
             "quick|full (python -m pytest suites/test_benchmarks.py --benchmark-only)")


def pytest_addoption(parser):
    group = parser.getgroup("ls", "label-smoothing suite")
    group.addoption("--ls-bench-sizes", choices=tuple(bench.SIZES), default=None,
                    help="benchmark sweep: quick (minutes on a laptop CPU) or full (vocabularies "
                         "32000-256000 at 8192 tokens); giving it runs the benchmarks "
                         "(default: quick, and only with --benchmark-only)")
    group.addoption("--ls-bench-threads", type=int, default=measuring.THREADS, metavar="N",
                    help="torch threads while a benchmark runs: with 2 threads on a 2-core machine "
                         "shared with other work, every parallel region waits for a preempted "
                         "thread and the per-round ratios scatter 10x more (docs/benchmarks.md) "
                         f"(default: {measuring.THREADS})")
    group.addoption("--ls-bench-measure", choices=("time", "instructions"), default="time",
                    help="time: wall time with the builtin interleaved, judged with statistics; "
                         "instructions: instructions per call under valgrind's callgrind, "
                         "deterministic, CPU only, the sweep at INSTRUCTION_ROWS tokens "
                         "(lsuite/benchmarking/instructions.py) (default: time)")


def sizes(config) -> str:
    return config.getoption("ls_bench_sizes") or "quick"


def asked(config) -> bool:
    return bool(config.getoption("benchmark_only", False) or config.getoption("ls_bench_sizes"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "ls_bench(what): a benchmark generated per point of the sweep "
        "('impls', 'hidden_states', 'noop' or 'reference'; see lsuite/pytest_plugin/benchplugin.py)")
    config.stash[STATE] = measuring.State(catalog.by_name()[bench.BUILTIN])
    if asked(config):  # before any benchmark allocates (lsuite/benchmarking/timing.py, pin_allocator)
        config.stash[ALLOCATOR] = timing.pin_allocator()


def _counter(config):
    """The session's callgrind worker, started at the first counted point."""
    state = config.stash[STATE]
    if state.counter is None:
        from lsuite.benchmarking import instructions

        state.counter = instructions.Counter(list(config.getoption("ls_impl")))
        config.add_cleanup(state.counter.close)
    return state.counter


def counting(config) -> bool:
    return config.getoption("ls_bench_measure") == "instructions"


def _impls(config, inputs: tuple[str, ...] = LOGITS_INPUTS) -> list:
    """The builtin first (the ratios' denominator), then the rest in their order, of the
    records called on `inputs`. Timing cannot cross a process boundary, so a SPEC's record
    (loaded in its worker for the checks, lsuite/running/worker.py) is imported here, in this
    process, when benchmarks are asked for; benchmarks measure cost, not correctness,
    which the isolated checks judge."""
    if HERE not in config.stash:
        impls = list(config.stash[IMPLS])
        if asked(config):  # otherwise the benchmark items only skip: nothing is imported
            impls = [_here(impl) if impl.input in (*LOGITS_INPUTS, "hidden_states") or _own(impl)
                     else impl for impl in impls]
        config.stash[HERE] = sorted(impls, key=lambda impl: impl.name != bench.BUILTIN)
    return [impl for impl in config.stash[HERE]
            if impl.input in inputs or (_own(impl) and inputs == LOGITS_INPUTS)]


def _own(impl) -> bool:
    """A record of an input kind of its own that runs in one process: it is timed at the
    logits points (n x k), on the inputs its kind makes."""
    return impl.kind is not None and not impl.kind.ranks


def _here(impl):
    if impl.origin == "builtin" or impl.build is not loading.in_its_worker:
        return impl
    return dataclasses.replace(loading.load(impl.origin), name=impl.name)


def _points(config, what: str) -> list[bench.Point]:
    if what == "noop":
        n, k = bench.NOOP_SHAPE
        return [bench.Point(bench.NOOP, device, "float32", pass_, n, k)
                for device in ("cpu", "cuda") for pass_ in bench.PASSES]
    points = []
    if what == "hidden_states":
        for n, h, k, dtypes in bench.LINEAR_SIZES[sizes(config)]:
            n = min(n, bench.INSTRUCTION_ROWS) if counting(config) else n
            points += [bench.Point(impl, device, dtype, pass_, n, k, h, bias=impl.bias)
                       for dtype in dtypes for device in ("cpu", "cuda") for pass_ in bench.PASSES
                       for impl in _impls(config, ("hidden_states",))
                       if dtype in impl.dtypes and device in impl.devices]
        return points
    for n, k, dtypes in bench.SIZES[sizes(config)]:
        n = min(n, bench.INSTRUCTION_ROWS) if counting(config) else n
        for dtype in dtypes:
            for device in ("cpu", "cuda"):
                for pass_ in bench.PASSES:
                    points += [bench.Point(impl, device, dtype, pass_, n, k)
                               for impl in _impls(config)
                               if dtype in impl.dtypes and device in impl.devices]
    return points


def _point_id(point: bench.Point) -> str:
    hidden = f"-h{point.h}" if point.h else ""
    return f"{point.impl.name}-{point.device}-{point.dtype}-{point.pass_}-n{point.n}{hidden}-k{point.k}"


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("ls_bench")
    if marker is None or "point" not in metafunc.fixturenames:
        return
    cuda = metafunc.config.stash[CUDA]
    params = []
    for point in _points(metafunc.config, marker.args[0] if marker.args else "impls"):
        marks = []
        if point.device == "cuda" and counting(metafunc.config):
            marks.append(pytest.mark.skip(reason="--ls-bench-measure instructions counts CPU "
                                          "instructions only (valgrind cannot see a GPU)"))
        elif point.device == "cuda" and not cuda["available"]:
            marks.append(pytest.mark.skip(reason=cuda["reason"]))
        elif asked(metafunc.config) and (why := bench.too_big(point)):
            marks.append(pytest.mark.skip(reason=why))
        params.append(pytest.param(point, id=_point_id(point), marks=marks))
    metafunc.parametrize("point", params)


def pytest_collection_modifyitems(config, items):
    if asked(config):
        return
    skip = pytest.mark.skip(reason=NOT_ASKED)
    for item in items:
        if item.get_closest_marker("ls_bench") is not None:
            item.add_marker(skip)


@pytest.fixture
def ls_bench(request, benchmark):
    """Measures a point with pytest-benchmark and records the entry for results.json."""
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled (--benchmark-disable, or pytest-xdist is "
                    "active: run the benchmarks without -n)")
    state = request.config.stash[STATE]
    if counting(request.config):
        from lsuite.benchmarking import instructions

        if reason := instructions.unavailable():
            pytest.skip(f"--ls-bench-measure instructions: {reason}")
        _counter(request.config)

    def measure(point: bench.Point, kind: str = "impl") -> dict:
        entry = measuring.measure(benchmark, point, state, kind)
        request.node.user_properties.append((results.BENCHMARK, entry))
        return entry

    threads = torch.get_num_threads()
    torch.set_num_threads(request.config.getoption("ls_bench_threads"))
    try:
        yield measure
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def ls_bench_record(request):
    """Records an entry measured outside measuring.measure (the reference's throughput)."""
    return lambda entry: request.node.user_properties.append((results.BENCHMARK, entry))


@pytest.fixture
def ls_bench_sizes(request) -> str:
    return sizes(request.config)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Before the results are written (lsuite.pytest_plugin.plugin's sink): machine info into the
    environment, and the regression gate against --ls-baseline, whose thresholds and
    findings go into results.json's benchmark_gate."""
    config = session.config
    collector = config.stash.get(COLLECTOR, None)
    entries = collector.benchmarks if collector is not None else []
    if entries:
        collector.environment["benchmark"] = dict(machine.machine_info(), sizes=sizes(config),
                                                  bench_threads=config.getoption("ls_bench_threads"),
                                                  measure=config.getoption("ls_bench_measure"),
                                                  allocator=config.stash.get(ALLOCATOR, None))
        baseline = config.stash.get(BASELINE, None)
        findings = None
        if baseline is not None:
            findings = regression.regressions(entries, baseline.get("benchmarks") or [])
            config.stash[FINDINGS] = findings
            if findings and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        collector.benchmark_gate = regression.record(
            findings, config.getoption("ls_baseline") if baseline is not None else None)
    return (yield)


def _linear_line(entry: dict) -> str:
    """A hidden-states entry in one line: its peak and the baseline path's, over the logits."""
    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    speed = (f"{fmt(entry.get('median_s'), '.4f')} s, time x{fmt(entry.get('ratio_to_builtin'), '.2f')}"
             if entry.get("measure") == "time" else
             f"{entry.get('instructions')} instructions, x{fmt(entry.get('ratio_to_builtin'), '.2f')}")
    return (f"ls-bench: {entry['impl']} {entry['device']} {entry['dtype']} {entry['pass']} "
            f"n={entry['n']} H={entry['hidden_size']} k={entry['k']}: {speed}; peak/logits "
            f"{fmt(entry.get('peak_over_logits'), '.3f')} vs {fmt(entry.get('baseline_peak_over_logits'), '.3f')} "
            f"for {entry.get('baseline_path')}")


def pytest_terminal_summary(terminalreporter, config):
    entries = [e for e in (config.stash[COLLECTOR].benchmarks if COLLECTOR in config.stash else ())]
    if not entries:
        return
    terminalreporter.write_sep("-", "label-smoothing benchmarks")
    info = machine.machine_info()
    terminalreporter.write_line(
        f"ls-bench: {info['cpu']}, {info['torch_threads']} torch threads, torch {info['torch']}"
        + "".join(f", {g['name']} ({g['memory_bytes'] / 2**30:.0f} GiB)" for g in info["gpus"]))
    for entry in entries:
        if entry.get("kind") == "harness_overhead":
            terminalreporter.write_line(
                f"ls-bench: harness overhead ({entry['device']} {entry['pass']}, a no-op): "
                f"{entry['median_s'] * 1e6:.1f} us median")
        elif entry.get("input") == "hidden_states" and entry.get("kind") == "impl":
            terminalreporter.write_line(_linear_line(entry))
    findings = config.stash.get(FINDINGS, None)
    if findings is None:
        return
    if not findings:
        terminalreporter.write_line("ls-bench: no benchmark regression against the baseline "
                                    f"(threshold {regression.describe()})")
    for finding in findings:
        terminalreporter.write_line(f"REGRESSION {finding.message()}", red=True)
