"""pytest hooks and fixtures of the suite. State lives in lsuite.results, cases in
lsuite.cases, running in lsuite.runner, judging in lsuite.assertions; this module only
wires them.

A check is a test function marked `@pytest.mark.ls_cases(axis=values, ...)` in a module
marked `pytestmark = pytest.mark.ls_kind(KIND)` (records.CHECK_KINDS) that takes the
fixtures `impl` and `case`: it is generated once per implementation under test × device ×
point of the product of its axes that the implementation supports. Declared known
defects (matched by check name or kind, and a predicate on the case) become strict
xfails; cuda cases skip with the reason when no GPU is present.
"""

from __future__ import annotations

import itertools
import os
import warnings
from pathlib import Path

import pytest

from . import catalog, claims, loading, peers, results
from .cases import Case, default_case, supports
from .records import CHECK_KINDS, DEVICES, Impl
from .runner import Context

IMPLS = pytest.StashKey[tuple]()
COLLECTOR = pytest.StashKey[results.Collector]()
CUDA = pytest.StashKey[dict]()
REPORTS = pytest.StashKey[list]()
BASELINE = pytest.StashKey[object]()


class StaleKnownDefect(UserWarning):
    """A known defect names a check that the suite does not have."""


def pytest_addoption(parser):
    group = parser.getgroup("ls", "label-smoothing suite")
    group.addoption("--ls-impl", action="append", default=[], metavar="SPEC",
                    help="implementation under test, MODULE:ATTR or path/file.py:ATTR; repeatable; "
                         "also LS_IMPL=SPEC,SPEC (default: the built-in catalog)")
    group.addoption("--ls-builtins", action="store_true",
                    help="with --ls-impl, test the built-in catalog too (default: off)")
    group.addoption("--ls-list", action="store_true",
                    help="list the implementations under test with their claims and exit (default: off)")
    group.addoption("--ls-report-dir", default="reports/latest", metavar="DIR",
                    help="where results.json and report.html go (default: reports/latest)")
    group.addoption("--ls-baseline", default=None, metavar="RESULTS_JSON",
                    help="a previous results.json: the report adds a regression section (default: none)")
    group.addoption("--ls-seed", type=int, default=0, metavar="N",
                    help="seed mixed into every case's inputs (default: 0)")
    group.addoption("--ls-timeout", type=float, default=60.0, metavar="SECONDS",
                    help="per-check time limit; a hanging implementation fails that check (default: 60)")


def _specs(config) -> list[str]:
    specs = list(config.getoption("ls_impl"))
    specs += [s.strip() for s in os.environ.get("LS_IMPL", "").split(",") if s.strip()]
    return specs


def _resolve(config) -> tuple[Impl, ...]:
    specs = _specs(config)
    builtins = list(catalog.CATALOG) + list(peers.PEERS)
    impls = builtins if not specs or config.getoption("ls_builtins") else []
    taken = {impl.name for impl in impls}
    for spec in specs:
        try:
            impl = loading.load(spec, taken)
        except (loading.SpecError, ValueError) as exc:
            raise pytest.UsageError(str(exc).splitlines()[0]) from None
        taken.add(impl.name)
        impls.append(impl)
    return tuple(peers.as_run_here(impl) for impl in impls)


def _cuda_state() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"available": False, "reason": "no CUDA device: torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})", "devices": []}
    devices = [{"name": torch.cuda.get_device_name(i),
                "memory_bytes": torch.cuda.get_device_properties(i).total_memory}
               for i in range(torch.cuda.device_count())]
    return {"available": True, "reason": None, "devices": devices}


MARKERS = (  # also in pyproject.toml; registered here for an installed suite run elsewhere
    "ls_cases(**axes): the case axes a check is generated over (see lsuite/plugin.py)",
    "ls_kind(kind): what a check compares: reference, invariant or argument (lsuite/records.py CHECK_KINDS)",
)


def pytest_configure(config):
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    config.stash[CUDA] = _cuda_state()
    triton_note = peers.prepare_triton(config.stash[CUDA]["available"])  # before any import
    config.stash[IMPLS] = _resolve(config)
    if not hasattr(config, "workerinput"):  # the xdist controller, or a plain run
        config.stash[BASELINE] = _baseline(config)
        config.stash[COLLECTOR] = results.Collector(results.environment(
            config, config.stash[IMPLS], config.stash[CUDA], config.getoption("ls_seed")))
        if triton_note:
            config.stash[COLLECTOR].environment["triton"] = triton_note
        config.pluginmanager.register(_Sink(config), "ls-sink")


def _baseline(config):
    path = config.getoption("ls_baseline")
    if not path:
        return None
    import reports

    try:
        return reports.load_results(path)
    except reports.ResultsError as exc:
        raise pytest.UsageError(f"--ls-baseline {path}: {exc}") from None


def pytest_cmdline_main(config):
    if not config.getoption("ls_list"):
        return None
    for impl in _resolve(config):
        print(f"{impl.name}: {impl.convention} {impl.form} on {impl.input}, "
              f"reductions {', '.join(impl.reductions)} [{impl.origin}]")
        print(f"    {impl.description}")
        said = claims.describe(impl) + [f"skipped: {', '.join(peers.missing(impl))} not installed"
                                         for _ in peers.missing(impl)[:1]]
        if said:
            print(f"    claims: {'; '.join(said)}")
        for defect in impl.known_defects:
            print(f"    known defect ({defect.when_text}): {defect.reason}")
    return 0


def pytest_report_header(config):
    impls = config.stash[IMPLS]
    cuda = config.stash[CUDA]
    return [
        f"ls: {len(impls)} implementations under test: {', '.join(i.name for i in impls)}",
        f"ls: seed {config.getoption('ls_seed')}, report dir {config.getoption('ls_report_dir')}, "
        f"cuda {'available' if cuda['available'] else 'absent'}",
    ]


def _case_id(impl: Impl, case: Case, axes: dict) -> str:
    parts = [impl.name, case.device]
    for axis in axes:
        value = getattr(case, axis)
        parts.append(f"{axis}{value}" if axis in ("eps", "K", "N") else
                     f"{axis}-{value}" if axis in ("ignore", "weight", "targets") else str(value))
    return "-".join(parts)


def check_kind(definition) -> str:
    """The check's kind from its (module's) `ls_kind` marker; a missing one is a suite bug."""
    marker = definition.get_closest_marker("ls_kind")
    kind = marker.args[0] if marker is not None and marker.args else None
    if kind not in CHECK_KINDS:
        raise pytest.UsageError(f"{definition.nodeid}: an ls_cases check needs "
                                f"pytest.mark.ls_kind(one of {CHECK_KINDS}), got {kind!r}")
    return kind


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("ls_cases")
    if marker is None or "impl" not in metafunc.fixturenames:
        return
    axes = dict(marker.kwargs)
    needs = axes.pop("needs", ())
    check = metafunc.function.__name__.removeprefix("test_")
    kind = check_kind(metafunc.definition)
    cuda = metafunc.config.stash[CUDA]
    params = []
    for impl in metafunc.config.stash[IMPLS]:
        if any(not getattr(impl, need) for need in needs):
            continue
        for device in DEVICES:
            for combo in itertools.product(*axes.values()):
                case = default_case(impl).replace(device=device, **dict(zip(axes, combo, strict=True)))
                if supports(impl, case) is not None:
                    continue
                marks = []
                if device == "cuda" and not cuda["available"]:
                    marks.append(pytest.mark.skip(reason=cuda["reason"]))
                elif reason := peers.skip_reason(impl, case, cuda["available"], kind):
                    marks.append(pytest.mark.skip(reason=reason))
                defect = impl.defect_for(check, kind, case)
                if defect is not None:
                    marks.append(pytest.mark.xfail(strict=True, reason=defect.reason))
                params.append(pytest.param(impl, case, id=_case_id(impl, case, axes), marks=marks))
    metafunc.parametrize(("impl", "case"), params)


def _repro(item, impl: Impl) -> str:
    extra = "" if impl.origin == "builtin" else f" --ls-impl '{impl.origin}'"
    return f"python -m pytest '{item.nodeid}'{extra}"


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection: the stale-defect check sees all
def pytest_collection_modifyitems(config, items):
    limit = config.getoption("ls_timeout")
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "impl" not in callspec.params:
            continue
        impl, case = callspec.params["impl"], callspec.params["case"]
        if not isinstance(impl, Impl):  # an empty parameter set: nothing supports this check
            continue
        check, kind = item.originalname.removeprefix("test_"), check_kind(item)
        defect = impl.defect_for(check, kind, case)
        item.user_properties.append((results.PROPERTY, {
            "impl": impl.name, "check": check, "kind": kind, "params": case.params(),
            "repro": _repro(item, impl), "known_defect": None if defect is None else defect.reason}))
        if item.get_closest_marker("timeout") is None and not config.getoption("timeout", None):
            item.add_marker(pytest.mark.timeout(limit))
    _warn_stale_defects(config, items)


def _warn_stale_defects(config, items) -> None:
    """Warn about a known defect naming a check the suite does not have (after
    array-api-tests' stale xfail ids); only when every module of the suite was collected."""
    modules = {Path(str(item.path)) for item in items if item.get_closest_marker("ls_cases")}
    suite = {f for d in {path.parent for path in modules} for f in d.glob("test_*.py")
             if _has_checks(f)}
    if not modules or modules != suite:  # a partial run cannot tell stale from not collected
        return
    names = {item.originalname.removeprefix("test_") for item in items
             if item.get_closest_marker("ls_cases")}
    for impl in config.stash[IMPLS]:
        for defect in impl.known_defects:
            for stale in sorted(set(defect.checks) - names):
                warnings.warn(StaleKnownDefect(
                    f"{impl.name}: known defect names check {stale!r}, which the suite does not "
                    f"have (checks are test function names without test_)"), stacklevel=1)


def _has_checks(path: Path) -> bool:
    try:
        return "ls_cases" in path.read_text()
    except OSError:
        return False


@pytest.fixture
def ls_context(request, impl, case) -> Context:
    """The harness context of this check: seed, repro line, and a metrics recorder."""
    def record(metrics: dict) -> None:
        results.record_metrics(request.node, metrics)

    return Context(impl=impl, case=case, seed=request.config.getoption("ls_seed"),
                   repro=_repro(request.node, impl), record=record)


class _Sink:
    """The controller-side receiver of reports (a plugin object, so it sees its config)."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        self.config.stash[COLLECTOR].add(report)

    def pytest_sessionfinish(self, session, exitstatus):
        complete = exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        self.config.stash[REPORTS] = write_outputs(self.config, complete)

    def pytest_terminal_summary(self, terminalreporter):
        paths = self.config.stash.get(REPORTS, None)
        if paths:
            terminalreporter.write_sep("-", "label-smoothing suite")
            for path in paths:
                terminalreporter.write_line(f"ls: wrote {path}")


def write_outputs(config, complete: bool) -> list[str]:
    collector = config.stash[COLLECTOR]
    if not collector.checks and not collector.benchmarks:
        return []
    out_dir = Path(config.getoption("ls_report_dir"))
    if not out_dir.is_absolute():
        out_dir = Path(str(config.invocation_params.dir)) / out_dir
    payload = collector.payload(complete)
    results_path = out_dir / "results.json"
    results.write_json(payload, results_path)
    written = [str(results_path)]
    try:
        import reports
    except ImportError as exc:  # the suite's verdict never depends on rendering
        return written + [f"(no report.html: cannot import reports: {exc})"]
    try:
        reports.write_report(payload, out_dir / "report.html", baseline=config.stash[BASELINE])
        written.append(str(out_dir / "report.html"))
    except Exception as exc:  # report rendering must not lose the results
        written.append(f"(report.html not written: {type(exc).__name__}: {exc})")
    return written
