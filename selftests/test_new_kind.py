"""A new input kind costs one module: examples/classes_first_kind.py declares a loss on
classes-first scores (K, N), examples/classes_first_cross_entropy.py is its record, and
nothing else in the repository names it. The generic checks (reference, the three
invariants, arguments), a benchmark and the report's matrix run on it; broken losses of the
kind fail the checks that exist for their bugs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORD = "examples/classes_first_cross_entropy.py:CLASSES_FIRST_CE"
BROKEN = "selftests/impls/classes_first.py"


def _suite(tmp: Path, *args: str) -> tuple[int, dict, str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--ls-report-dir", str(tmp), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    results = json.loads((tmp / "results.json").read_text()) if (tmp / "results.json").exists() else {}
    return proc.returncode, results, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def correct(tmp_path_factory):
    out = tmp_path_factory.mktemp("classes_first")
    return (out, *_suite(out, "suites/test_every_kind.py", "--ls-impl", RECORD))


def test_the_kind_is_named_nowhere_but_its_module_and_records():
    named = [str(p.relative_to(ROOT)) for folder in ("lsuite", "suites", "lsresults", "reports", "reference")
             for p in (ROOT / folder).rglob("*.py") if "classes_first" in p.read_text()]
    assert named == []


def test_every_generic_check_runs_and_passes_on_the_new_kind(correct):
    out, rc, results, text = correct
    assert rc == 0, text[-3000:]
    checks = [c for c in results["checks"] if c["impl"] == "classes_first_ce"]
    passed = {c["kind"] for c in checks if c["outcome"] == "passed"}
    assert passed == {"reference", "invariant", "argument"}, text[-3000:]
    names = {c["check"] for c in checks if c["outcome"] == "passed"}
    for check in ("kind_value_and_gradients_in_every_dtype_and_reduction",
                  "kind_shifting_a_rows_logits_changes_nothing",
                  "kind_permuting_the_classes_permutes_their_gradients",
                  "kind_permuting_the_batch_permutes_the_rows",
                  "kind_rejects_targets_at_or_above_the_class_count"):
        assert check in names, (check, sorted(names))
    judged = [c["judged"] for c in checks if c.get("judged")]
    assert judged and all(set(j) == {"value", "scores"} for j in judged)
    assert all("scores" in c["gradients"] for c in checks if c.get("judged"))
    record = next(r for r in results["environment"]["impls"] if r["name"] == "classes_first_ce")
    assert record["input"] == "classes_first"


def test_the_report_has_the_new_kind_in_its_matrix(correct):
    out, rc, results, text = correct
    html = (out / "report.html").read_text()
    assert "classes_first_ce" in html and "kind_value_and_gradients_in_every_dtype_and_reduction" in html


def test_a_benchmark_runs_on_the_new_kind(tmp_path):
    rc, results, text = _suite(tmp_path, "suites/test_benchmarks.py", "--ls-impl", RECORD,
                               "--benchmark-only", "--ls-bench-one", "-k", "test_speed_and_memory")
    assert rc == 0, text[-3000:]
    entries = [b for b in results["benchmarks"] if b.get("impl") == "classes_first_ce"]
    assert entries and all(e["median_s"] > 0 for e in entries), results["benchmarks"]


def test_broken_losses_of_the_new_kind_fail_the_checks_that_exist_for_their_bugs(tmp_path):
    rc, results, text = _suite(tmp_path, "suites/test_every_kind.py",
                               "--ls-impl", f"{BROKEN}:EXCLUSIVE_SOLD_AS_INCLUSIVE",
                               "--ls-impl", f"{BROKEN}:CLASS_ZERO_TERM")
    assert rc == 1, text[-3000:]
    failed = {}
    for c in results["checks"]:
        if c["outcome"] == "failed":
            failed.setdefault(c["impl"], set()).add(c["check"])
    # smoothing over K - 1: the reference checks fail wherever eps > 0; the invariants hold
    assert "kind_value_and_gradients_in_every_dtype_and_reduction" in failed["classes_first_exclusive"]
    assert not any("permuting" in c or "shifting" in c for c in failed["classes_first_exclusive"])
    # a term of class 0: the class permutation and the row shift move it
    assert {"kind_permuting_the_classes_permutes_their_gradients",
            "kind_shifting_a_rows_logits_changes_nothing"} <= failed["classes_first_class_zero_term"]
