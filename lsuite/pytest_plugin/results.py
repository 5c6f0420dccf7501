"""Collect every check's outcome and metrics from pytest reports; write results.json.

Runs on the controller only: under pytest-xdist, workers' reports (with their
user_properties) are replayed there, so a parallel run records the same checks.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from lsresults.files import write_results
from lsresults.inputs import check_fields, input_kinds
from lsresults.load import SCHEMA
from lsresults.text import MESSAGE_CHARS, safe_text
from lsresults.verdicts import verdict_of
from lsuite.benchmarking.machine import cpu_model
from lsuite.pytest_plugin.unchecked import not_checked
from lsuite.record import claims
from reports import causes as report_causes

PROPERTY = "ls"  # user_properties key holding a check's impl, check name and params
METRICS = "ls_metrics"  # user_properties key holding measured errors
BENCHMARK = "ls_benchmark"  # user_properties key holding one benchmark entry (issue: benchmarks)
DEFAULT_KIND = "unspecified"  # a check whose PROPERTY dict names no "kind" (none of ours)
# The conventions worked example (docs/specification.md §1) recorded per implementation: the
# target distribution for K classes, smoothing eps, class-index target TARGET, with
# column PAD_INDEX as the padding column of a padding_excluded implementation.
EXAMPLE = {"K": 5, "eps": 0.1, "target": 1, "pad_index": 0}
JUDGED = "judged"  # the metrics key holding each output's judgement (lsuite/checks/reference.py)
METRIC_KEYS = ("value_max_abs_err", "value_max_rel_err", "grad_max_abs_err", "grad_max_rel_err",
               "value_budget", "grad_budget", "baseline_value_abs_err", "baseline_grad_abs_err")


def _plain(value):
    """A JSON- and execnet-safe scalar: numpy scalars and 0-d arrays become Python floats."""
    if value is None or type(value) in (bool, int, float, str):  # np.float64 subclasses float
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


DIVERGENCE = "ls_divergence"  # user_properties key holding a divergence's message
FAILURES = "ls_failures"  # user_properties key: every distinct failure Hypothesis found
SUITE_ERROR = "ls_suite_error"  # user_properties key: the check failed by the suite's own error
CAUSES = "ls_causes"  # user_properties key: what failed, as data (lsuite/running/causes.py)


def record_suite_error(node, message: str) -> None:
    node.user_properties.append((SUITE_ERROR, safe_text(message)))


def record_failures(node, messages: list[str]) -> None:
    """Keep each distinct failure of a check (Hypothesis reports several as one group)."""
    node.user_properties.append((FAILURES, [safe_text(m, MESSAGE_CHARS // 4) for m in messages]))


def _all_failures(messages) -> str:
    if not messages:
        return ""
    n = len(messages)
    return "\n\n".join(f"[failure {i} of {n}] {m}" for i, m in enumerate(messages, 1))


def record_causes(report, found: list[dict]) -> None:
    """Attach a failure's causes (lsuite/running/causes.py) to its report (they travel under xdist)."""
    report.user_properties.append((CAUSES, found))


def record_divergence(node, message: str) -> None:
    """Mark a check that passed the gate as a divergence (lsuite/judging/severity.py)."""
    node.user_properties.append((DIVERGENCE, message))


def record_metrics(node, metrics: dict) -> None:
    """Attach measured metrics to a test item; they travel with its reports (also under xdist)."""
    node.user_properties.append((METRICS, {str(k): _plain_tree(v) if k == JUDGED else _plain(v)
                                           for k, v in metrics.items()}))


def _plain_tree(value):
    """A judgement ({output: {field: scalar}}) made of plain values."""
    if isinstance(value, dict):
        return {str(k): _plain_tree(v) for k, v in value.items()}
    return _plain(value)


def _props(report, key):
    return next((v for k, v in getattr(report, "user_properties", ()) if k == key), None)


def outcome_of(report, declared: bool = False) -> str | None:
    """This phase's contribution to the check's outcome, or None if it adds nothing.
    `declared`: the check is a declared known defect (a strict xfail the plugin added), so a
    failed call without `wasxfail` is pytest's strict XPASS: the defect no longer shows."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:  # also a non-strict known defect (on a drawn check) that did not show
            return "passed"
        if report.skipped:
            return "xfailed" if xfail else "skipped"
        return "xpassed" if declared and not xfail else "failed"
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    if report.failed:
        return "error"
    return None


def message_of(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    if hasattr(report, "wasxfail") and not report.failed:
        return f"known defect: {report.wasxfail}"
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    return str(report.longrepr or "")


class Collector:
    def __init__(self, environment: dict):
        self.environment = environment
        self.checks: dict[str, dict] = {}
        self.benchmarks: list[dict] = []
        self.benchmark_gate: dict | None = None  # set by lsuite.pytest_plugin.benchplugin when benchmarks ran
        self.started = time.time()

    def add(self, report) -> None:
        if report.when == "call":
            self.benchmarks += [v for k, v in getattr(report, "user_properties", ()) if k == BENCHMARK]
        info = _props(report, PROPERTY)
        if info is None:
            return
        outcome = outcome_of(report, declared=bool(info.get("known_defect")))
        entry = self.checks.setdefault(report.nodeid, {
            "impl": info["impl"], "check": info["check"], "kind": str(info.get("kind") or DEFAULT_KIND),
            "nodeid": report.nodeid,
            "outcome": None, "params": info["params"],
            "metrics": dict.fromkeys(METRIC_KEYS), "message": "", "repro": info.get("repro"),
            "duration_s": 0.0, "causes": [], "known_defect": info.get("known_defect"),
        })
        entry["duration_s"] += float(getattr(report, "duration", 0.0))
        divergence, failures, suite_error = None, None, None
        for key, value in getattr(report, "user_properties", ()):
            if key == METRICS:
                entry["metrics"].update(value)
            elif key == DIVERGENCE:
                divergence = value
            elif key == FAILURES:
                failures = value
            elif key == SUITE_ERROR:
                suite_error = value
            elif key == CAUSES and outcome not in (None, "passed"):
                entry["causes"] = value
        if outcome == "passed" and divergence is not None and report.when == "call":
            outcome = "divergence"
        if outcome == "failed" and suite_error is not None:
            outcome, failures = "suite_error", [suite_error]
        if outcome is not None and (entry["outcome"] in (None, "passed") or outcome == "error"):
            entry["outcome"] = outcome
            if outcome == "divergence":
                entry["message"] = safe_text(divergence)
            elif outcome == "suite_error":
                entry["message"] = suite_error
            elif outcome != "passed":
                entry["message"] = safe_text(_all_failures(failures) or message_of(report))

    def payload(self, complete: bool) -> dict:
        env = dict(self.environment)
        finished = time.time()
        env["finished"] = datetime.fromtimestamp(finished, timezone.utc).isoformat(timespec="seconds")
        env["duration_s"] = round(finished - self.started, 3)
        kinds = input_kinds(env)
        checks = [dict(c, outcome=c["outcome"] or "error") for c in self.checks.values()]
        checks = [_lift_judged(c) for c in checks]
        checks = [dict(c, **check_fields(c, kinds)) for c in checks]
        return {"schema": SCHEMA, "complete": complete, "environment": env,
                "verdicts": verdicts(checks), "checks": checks,
                "findings": report_causes.findings(checks, env), "benchmarks": self.benchmarks,
                "benchmark_gate": self.benchmark_gate,
                "not_checked": not_checked(checks)}  # {impl: why}: lsuite/pytest_plugin/unchecked.py


def _lift_judged(check: dict) -> dict:
    """The check with its outputs' judgement as a field of its own (`judged`), out of the
    metrics that carried it from the check."""
    metrics = dict(check["metrics"])
    judged = metrics.pop(JUDGED, None)
    return dict(check, metrics=metrics, **({JUDGED: judged} if isinstance(judged, dict) else {}))


def verdicts(checks: list[dict]) -> dict[str, str]:
    """Each implementation's verdict in the report's wording (lsresults.verdicts.verdict_of);
    equivalence checks compare conventions and count for no implementation."""
    counts: dict[str, Counter] = {}
    for check in checks:
        if check.get("kind") != "equivalence":
            counts.setdefault(check["impl"], Counter())[check["outcome"]] += 1
    return {impl: verdict_of(c) for impl, c in counts.items()}


def write_json(payload: dict, path: Path) -> str:
    """Atomic (lsresults.files.write_results): a reader never sees half a file; returns the
    sha256 of the bytes written, which the report records (python -m reports verify)."""
    return write_results(payload, path)


def example_target(impl) -> dict:
    """The implementation's target distribution on the worked example (EXAMPLE), from
    the reference; q is null with the reason when the reference cannot give it."""
    out = dict(EXAMPLE, q=None, error=None)
    try:
        import numpy

        import reference

        pad = EXAMPLE["pad_index"] if impl.convention == "padding_excluded" else None
        spec = reference.Spec(impl.convention, impl.form, EXAMPLE["eps"], "sum", pad_index=pad)
        q = numpy.asarray(reference.target_distribution(spec, EXAMPLE["K"], EXAMPLE["target"]),
                          dtype=numpy.float64).reshape(-1)
        if q.shape != (EXAMPLE["K"],) or not numpy.all(numpy.isfinite(q)):
            raise ValueError(f"reference returned {q!r}")
        out["q"] = [float(v) for v in q]
    except Exception as exc:  # recorded, never fatal: the report says why the row is empty
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out


def _commit(root: Path) -> str | None:
    """The commit of the checkout the suite runs from; None for an installed copy (its
    directory is not a checkout's top level, even inside another project's repository)."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        lines = out.stdout.split()
        if out.returncode or len(lines) != 2 or Path(lines[0]).resolve() != root.resolve():
            return None
        return lines[1]
    except (OSError, subprocess.SubprocessError):
        return None


SUITE_ROOT = Path(__file__).resolve().parents[2]  # a checkout's top level, or site-packages
DISTRIBUTION = "label-smoothing-suite"  # pyproject.toml's project name


def suite_version() -> str | None:
    """The installed suite's version; from a checkout not installed, pyproject.toml's."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        found = re.search(r'^version\s*=\s*"([^"]+)"', (SUITE_ROOT / "pyproject.toml").read_text(), re.M)
    except OSError:
        return None
    return found.group(1) if found else None


def environment(config, impls, cuda_state: dict, seed: int) -> dict:
    import numpy
    import scipy
    import torch

    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite_version": suite_version(), "suite_commit": _commit(SUITE_ROOT),
        "command": " ".join([Path(sys.executable).name, "-m", "pytest", *config.invocation_params.args]),
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": numpy.__version__, "scipy": scipy.__version__,
        "platform": platform.platform(), "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(), "cuda": cuda_state, "seed": seed,
        "hypothesis_profile": config.getoption("hypothesis_profile", None) or "default",
        "hypothesis_seed": config.getoption("hypothesis_seed", None),  # set by lsuite.pytest_plugin.hypoplugin
        "workers": getattr(config.option, "numprocesses", None) or 1,
        "impls": [claims.as_data(impl) | {"example_target": example_target(impl)} for impl in impls],
    }
