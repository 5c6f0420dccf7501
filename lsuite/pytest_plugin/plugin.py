"""pytest hooks and fixtures of the suite. State lives in lsuite.pytest_plugin.results, cases in
lsuite.inputs.cases, running in lsuite.running.runner, judging in lsuite.judging.assertions; this module only
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
import time
import warnings
from pathlib import Path

import pytest

import lsresults
from lsresults.text import repro
from lsuite.catalogs import catalog, loading, peers, triton_here
from lsuite.inputs.cases import Case, default_case
from lsuite.judging.severity import CheckDiverged, SuiteError
from lsuite.kinds import KIND_AXES, kind_of, supports
from lsuite.pytest_plugin import outputs, results
from lsuite.pytest_plugin.stash import BASELINE, COLLECTOR, CUDA, IMPLS, POOL
from lsuite.record import claims
from lsuite.record.records import CHECK_KINDS, DEVICES, INPUTS, LOGITS_INPUTS, Impl
from lsuite.running import worker
from lsuite.running.runner import Context

# pytest-timeout's alarm is a backstop for the suite's own code when implementations run in
# workers (the pool enforces --ls-timeout itself, by killing the worker).
BACKSTOP_S = 30.0
OTHER_KINDS = "other"  # ls_inputs: records that bring an input kind of their own (Impl.kind)


class StaleKnownDefect(UserWarning):
    """A known defect names a check that the suite does not have."""


def pytest_addoption(parser):
    group = parser.getgroup("ls", "label-smoothing suite")
    group.addoption("--ls-impl", action="append", default=[], metavar="SPEC",
                    help="implementation under test, MODULE:ATTR or path/file.py:ATTR; repeatable; "
                         "also LS_IMPL=SPEC,SPEC (default: the built-in catalog)")
    group.addoption("--ls-builtins", action="store_true",
                    help="with --ls-impl, test the built-in catalog too (default: off)")
    group.addoption("--ls-ecosystem", action="store_true",
                    help="add the ecosystem catalog (lsuite/catalogs/peers.py: timm, Hugging Face, Liger, "
                         "torch.compile, autocast) to the built-in recipes; records whose library is "
                         "absent skip with the install command (default: off)")
    group.addoption("--ls-list", action="store_true",
                    help="list the implementations under test with their claims and exit (default: off)")
    group.addoption("--ls-report-dir", default="reports/latest", metavar="DIR",
                    help="where results.json and report.html go (default: reports/latest)")
    group.addoption("--ls-baseline", default=None, metavar="RESULTS_JSON",
                    help="a previous results.json: the report adds a regression section (default: none)")
    group.addoption("--ls-seed", type=int, default=0, metavar="N",
                    help="seed mixed into every case's inputs (default: 0)")
    group.addoption("--ls-timeout", type=float, default=60.0, metavar="SECONDS",
                    help="per-check time limit, Hypothesis checks included; a hanging implementation "
                         "is killed, fails that check, and its remaining checks are not run (default: 60)")
    group.addoption("--ls-impl-budget", type=float, default=None, metavar="SECONDS",
                    help="time limit for all of one implementation's calls; its checks after that "
                         "fail as not run (default: none)")
    group.addoption("--ls-strict", action="store_true",
                    help="fail the gate on divergences too (edges where PyTorch itself is "
                         "arbitrary or defective; lsuite/judging/severity.py) (default: off)")
    group.addoption("--ls-inprocess", action="store_true",
                    help="run implementations in the suite's own process, for debugging: a crash "
                         "or hang then ends or stalls the run (default: off, each implementation "
                         "runs in a worker process)")


def _specs(config) -> list[str]:
    specs = list(config.getoption("ls_impl"))
    specs += [s.strip() for s in os.environ.get("LS_IMPL", "").split(",") if s.strip()]
    return specs


def _resolve(config, pool) -> tuple[Impl, ...]:
    """The records under test: the catalog's, and each SPEC's, loaded in its own worker
    process (or here with --ls-inprocess, pool None)."""
    specs = _specs(config)
    builtins = list(catalog.CATALOG)
    if config.getoption("ls_ecosystem"):
        builtins += list(peers.PEERS)
    impls = builtins if not specs or config.getoption("ls_builtins") else []
    taken = {impl.name for impl in impls}
    for spec in specs:
        try:
            impl = (loading.load(spec, taken) if pool is None
                    else loading.load_isolated(spec, pool, taken))
        except (loading.SpecError, ValueError) as exc:
            raise pytest.UsageError(str(exc).splitlines()[0]) from None
        taken.add(impl.name)
        impls.append(impl)
    return tuple(triton_here.as_run_here(impl) for impl in impls)


def _cuda_state() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"available": False, "reason": "no CUDA device: torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})", "devices": []}
    devices = [{"name": torch.cuda.get_device_name(i),
                "memory_bytes": torch.cuda.get_device_properties(i).total_memory}
               for i in range(torch.cuda.device_count())]
    return {"available": True, "reason": None, "devices": devices}


def _pool(config):
    if config.getoption("ls_inprocess"):
        return None
    return worker.Pool(limit_s=config.getoption("ls_timeout"),
                       impl_budget_s=config.getoption("ls_impl_budget"),
                       interrupted=outputs.Interrupt.check)


MARKERS = (  # also in pyproject.toml; registered here for an installed suite run elsewhere
    "ls_cases(**axes): the case axes a check is generated over (see lsuite/pytest_plugin/plugin.py)",
    "ls_kind(kind): what a check compares: reference, invariant or argument (lsuite/record/records.py CHECK_KINDS)",
    "ls_inputs(*inputs): the record inputs a check is generated for (default: logits, log_probs; lsuite/record/records.py INPUTS; \"other\": records of a kind of their own)",
)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    outputs.Interrupt.check()


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter formats it
def pytest_keyboard_interrupt(excinfo):
    outputs.drop_lineless_frames(excinfo.value)


def pytest_configure(config):
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    outputs.install_interrupt()
    config.stash[CUDA] = _cuda_state()
    # before any worker starts (they inherit the environment) and before any record loads
    triton_note = triton_here.prepare_triton(config.stash[CUDA]["available"])
    config.stash[POOL] = pool = _pool(config)
    try:
        config.stash[IMPLS] = _resolve(config, pool)
    except BaseException:
        if pool is not None:
            pool.close()
        raise
    if not hasattr(config, "workerinput"):  # the xdist controller, or a plain run
        config.stash[BASELINE] = _baseline(config)
        config.stash[COLLECTOR] = results.Collector(results.environment(
            config, config.stash[IMPLS], config.stash[CUDA], config.getoption("ls_seed")))
        if triton_note:
            config.stash[COLLECTOR].environment["triton"] = triton_note
        config.pluginmanager.register(outputs.Sink(config), "ls-sink")


def pytest_unconfigure(config):
    pool = config.stash.get(POOL, None)
    if pool is not None:
        pool.close()


def _baseline(config):
    path = config.getoption("ls_baseline")
    if not path:
        return None
    try:
        return lsresults.load_results(path)
    except lsresults.ResultsError as exc:
        raise pytest.UsageError(f"--ls-baseline {path}: {exc}") from None


def pytest_cmdline_main(config):
    if not config.getoption("ls_list"):
        return None
    pool = _pool(config)
    try:
        impls = _resolve(config, pool)
    finally:
        if pool is not None:
            pool.close()
    for impl in impls:
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
        parts.append(f"{axis}{value}" if axis in ("eps", "K", "N", "miss", "H", "world") else
                     f"{axis}-{value}" if axis in ("ignore", "weight", "targets", "bias") else str(value))
    return "-".join(parts)


def check_kind(definition) -> str:
    """The check's kind from its (module's) `ls_kind` marker; a missing one is a suite bug."""
    marker = definition.get_closest_marker("ls_kind")
    kind = marker.args[0] if marker is not None and marker.args else None
    if kind not in CHECK_KINDS:
        raise pytest.UsageError(f"{definition.nodeid}: an ls_cases check needs "
                                f"pytest.mark.ls_kind(one of {CHECK_KINDS}), got {kind!r}")
    return kind


def check_inputs(definition) -> tuple[str, ...]:
    """The record inputs a check is generated for: its (module's) `ls_inputs` marker, else
    the logits checks' (a hidden-states or vocab-parallel record never gets those)."""
    marker = definition.get_closest_marker("ls_inputs")
    inputs = tuple(marker.args) if marker is not None else LOGITS_INPUTS
    if not inputs or not set(inputs) <= {*INPUTS, OTHER_KINDS}:
        raise pytest.UsageError(f"{definition.nodeid}: ls_inputs takes some of {(*INPUTS, OTHER_KINDS)}, "
                                f"got {inputs!r}")
    return inputs


def _generated_for(impl: Impl, inputs: tuple[str, ...]) -> bool:
    """Whether a check marked ls_inputs(*inputs) is generated for the record: its input is
    listed, or the record brings a kind of its own and the check is for OTHER_KINDS."""
    return impl.input in inputs if impl.kind is None else OTHER_KINDS in inputs


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("ls_cases")
    if marker is None or "impl" not in metafunc.fixturenames:
        return
    axes = dict(marker.kwargs)
    needs = axes.pop("needs", ())
    inputs = check_inputs(metafunc.definition)
    check = metafunc.function.__name__.removeprefix("test_")
    kind = check_kind(metafunc.definition)
    # A known defect binds strictly only to fixed cases: on a Hypothesis-drawn check whether
    # it shows may depend on the draw, and the gate must not depend on a draw.
    strict = not getattr(metafunc.function, "is_hypothesis_test", False)
    cuda = metafunc.config.stash[CUDA]
    params = []
    for impl in metafunc.config.stash[IMPLS]:
        if not _generated_for(impl, inputs) or any(not getattr(impl, need) for need in needs):
            continue
        # a generic check on a kind of the record's own: over that kind's axes too
        own = {**dict(kind_of(impl).matrix), **axes} if impl.kind is not None else axes
        for device in DEVICES:
            for combo in itertools.product(*own.values()):
                case = default_case(impl).replace(device=device, **dict(zip(own, combo, strict=True)))
                if supports(impl, case) is not None:
                    continue
                marks = []
                if device == "cuda" and not cuda["available"]:
                    marks.append(pytest.mark.skip(reason=cuda["reason"]))
                elif reason := triton_here.skip_reason(impl, case, cuda["available"], kind):
                    marks.append(pytest.mark.skip(reason=reason))
                defect = impl.defect_for(check, kind, case)
                if defect is not None:
                    marks.append(pytest.mark.xfail(strict=strict, reason=defect.reason))
                params.append(pytest.param(impl, case, id=_case_id(impl, case, own), marks=marks))
    metafunc.parametrize(("impl", "case"), params)


def _params(impl: Impl, case: Case) -> dict:
    """The case's fields for results.json, without the axes of other input kinds (a logits
    check has no hidden size, bias or world)."""
    own = kind_of(impl).axes
    return {k: v for k, v in case.params().items() if k not in KIND_AXES or k in own}


def _repro(item, impl: Impl) -> str:
    """A shell command that reruns this one check (every argument quoted for the shell)."""
    return repro(item.nodeid, None if impl.origin == "builtin" else impl.origin)


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection: the stale-defect check sees all
def pytest_collection_modifyitems(config, items):
    limit = config.getoption("ls_timeout")
    backstop = 0.0 if config.getoption("ls_inprocess") else BACKSTOP_S
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
            "impl": impl.name, "check": check, "kind": kind, "params": _params(impl, case),
            "repro": _repro(item, impl), "known_defect": None if defect is None else defect.reason}))
        if item.get_closest_marker("timeout") is None and not config.getoption("timeout", None):
            item.add_marker(pytest.mark.timeout(limit * impl.time_factor + backstop))
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


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    """A divergence (lsuite/judging/severity.py) passes the check, recorded as such, unless
    --ls-strict or the check is a declared known defect (which must keep failing)."""
    try:
        return (yield)
    except BaseException as exc:
        inner = getattr(exc, "exceptions", None)
        if inner and len(inner) > 1:
            results.record_failures(pyfuncitem, [f"{type(e).__name__}: {e}" for e in inner])
        if isinstance(exc, SuiteError):
            results.record_suite_error(pyfuncitem, str(exc))
        diverged = _divergence(exc)
        declared = any(k == results.PROPERTY and v.get("known_defect")
                       for k, v in pyfuncitem.user_properties)
        if diverged is None or declared or pyfuncitem.config.getoption("ls_strict"):
            raise
        results.record_divergence(pyfuncitem, diverged)
        return True


def _divergence(exc: BaseException) -> str | None:
    """The divergence's message if exc is one (or a group of only divergences), else None."""
    if isinstance(exc, CheckDiverged):
        return str(exc)
    inner = getattr(exc, "exceptions", None)  # Hypothesis: several distinct failures
    if inner and all(isinstance(e, CheckDiverged) for e in inner):
        return "\n\n".join(str(e) for e in inner)
    return None


@pytest.fixture
def ls_context(request, impl, case) -> Context:
    """The harness context of this check: seed, repro line, and a metrics recorder."""
    def record(metrics: dict) -> None:
        results.record_metrics(request.node, metrics)

    config = request.config
    return Context(impl=impl, case=case, seed=config.getoption("ls_seed"),
                   repro=_repro(request.node, impl), record=record,
                   pool=config.stash.get(POOL, None), check=request.node.nodeid,
                   deadline=time.monotonic() + config.getoption("ls_timeout") * impl.time_factor)
