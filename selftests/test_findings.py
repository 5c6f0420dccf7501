"""Findings by root cause, end to end: the suite run (pytester, as a user runs it) on
implementations with known bugs yields one finding per bug, naming its cause; an
exception names the implementation's raising line; the report shows the findings first.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis.vendor.pretty import pretty
from PIL import Image

from lsuite.catalogs import catalog
from lsuite.inputs.cases import Case
from lsuite.running.runner import Context
from reports import write_report
from selftests.test_plugin import ROOT, run_suite

IMPLS = ROOT / "selftests" / "impls" / "findings.py"
EVERY_DTYPE_AND_REDUCTION = "value_and_gradient_in_every_dtype_and_reduction"


def findings_of(payload, impl):
    return [f for f in payload["findings"] if f["impl"] == impl]


def test_one_wrong_shape_and_one_wrong_denominator_are_two_findings(pytester):
    result, payload = run_suite(pytester, "--ls-impl", f"{IMPLS}:ShapeAndDenominatorBugs",
                                "-k", EVERY_DTYPE_AND_REDUCTION)
    assert result.ret == 1
    found = findings_of(payload, "ShapeAndDenominatorBugs")
    assert sorted(f["cause"][0] for f in found) == ["over_budget", "wrong_shape"], found
    shape = next(f for f in found if f["cause"][0] == "wrong_shape")
    assert "one extra dimension" in shape["summary"] and shape["axes_constant"]["reduction"] == "none"
    assert "dtype" in shape["axes_varying"]  # one finding across every dtype
    value = next(f for f in found if f["cause"][0] == "over_budget")
    assert value["cause"][1:] == ["reference", "computes", "inclusive", "every element (N·K)"]
    assert "its mean divides by every element (N·K)" in value["summary"]
    assert value["axes_constant"]["reduction"] == "mean"
    failed = [c for c in payload["checks"] if c["outcome"] == "failed"]
    assert sum(f["count"] for f in found) == len(failed) > 2
    text = result.stdout.str()
    assert "ls: what failed (2 root causes):" in text, text[-3000:]


def test_an_exception_on_every_call_is_one_finding_naming_the_raising_line(pytester):
    result, payload = run_suite(pytester, "--ls-impl", f"{IMPLS}:RaisesOnEveryCall",
                                "-k", EVERY_DTYPE_AND_REDUCTION)
    assert result.ret == 1
    (finding,) = findings_of(payload, "RaisesOnEveryCall")
    line = next(i for i, s in enumerate(IMPLS.read_text().splitlines(), 1) if "raises: None < 0" in s)
    assert finding["cause"][:3] == ["raised", "calling it", "TypeError"]
    assert finding["cause"][3] == f"{IMPLS}:{line}"
    innermost = finding["traceback"][-1]
    assert (innermost["file"], innermost["line"], innermost["own"]) == (str(IMPLS), line, True)
    assert not any("lsuite" in Path(f["file"]).parts for f in finding["traceback"])  # the suite's frames left out
    assert f"{IMPLS}:{line} in compare_device" in result.stdout.str()


def _failing_results_with_many_skips() -> dict:
    """A run whose failure sits among hundreds of skipped equivalence checks (issue 20)."""
    skipped = [{"impl": "(equivalence)", "check": f"equivalence_{i}", "kind": "equivalence",
                "nodeid": f"suites/test_equivalences.py::test_equivalence_{i}", "outcome": "skipped",
                "params": {}, "metrics": {}, "message": "Skipped: needs the catalog records (add --ls-builtins)"}
               for i in range(300)]
    failed = {"impl": "broken_ce", "check": EVERY_DTYPE_AND_REDUCTION, "kind": "reference",
              "nodeid": "suites/test_conformance.py::test_x[broken_ce-cpu-float64-none]", "outcome": "failed",
              "params": {"dtype": "float64", "reduction": "none"}, "metrics": {},
              "message": "out.shape=(16, 1), but should be (16,)", "repro": "python -m pytest ...",
              "causes": [{"kind": "wrong_shape", "quantity": "out", "detail": "out.shape=(16, 1), expected (16,)",
                          "data": {"relation": "one extra dimension"}}]}
    return {"schema": 2, "complete": True, "environment": {"impls": [{"name": "broken_ce"}]},
            "checks": skipped + [failed], "benchmarks": []}


FAIL_BORDER = (0x7F, 0x10, 0x10)  # style.css.j2 --fail-t: the left border of a failure's card
FOLD_PX = 900  # what a 1400 x 900 window shows before any scrolling


def test_the_report_shows_the_findings_above_the_fold_at_1400_px(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("LS_REQUIRE_BROWSER"):  # set by .ci/run, which installs chromium
            pytest.fail("LS_REQUIRE_BROWSER is set but no chromium or chromium-browser is on PATH")
        pytest.skip("no chromium or chromium-browser on PATH: the headless screenshot check needs one")
    out = write_report(_failing_results_with_many_skips(), tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--no-first-run", "--hide-scrollbars", f"--screenshot={shot}",
                           f"--window-size=1400,{FOLD_PX}", out.as_uri()],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    assert shot.exists(), proc.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, FOLD_PX)
    pixels = image.load()
    # the card's 4-px left border: a column of the failure colour at least 24 px tall
    tallest = 0
    for x in range(image.width // 4):
        run = 0
        for y in range(image.height):
            run = run + 1 if pixels[x, y] == FAIL_BORDER else 0
            tallest = max(tallest, run)
    assert tallest >= 24, f"no finding card above the fold (tallest failure-coloured column: {tallest} px)"


def test_the_findings_come_before_every_table_of_passes_or_skips(tmp_path):
    html = write_report(_failing_results_with_many_skips(), tmp_path / "report.html").read_text()
    first_card = html.index('class="cause failure"')
    assert first_card < html.index('id="verdict-table"') and first_card < html.index('id="skip-reasons"')
    assert json.dumps("one extra dimension")[1:-1] in html[:first_card + 2000]


def test_a_library_fix_is_headlined_as_fixed_and_still_fails_the_gate(pytester, monkeypatch, tmp_path):
    spec = f"{IMPLS}:LibraryWithAKnownDefect"
    before, baseline = run_suite(pytester, "--ls-impl", spec, "-k", EVERY_DTYPE_AND_REDUCTION)
    assert before.ret == 0 and {c["outcome"] for c in baseline["checks"]} >= {"xfailed"}
    base_path = tmp_path / "baseline.json"
    base_path.write_text(json.dumps(baseline))
    monkeypatch.setenv("LS_SELFTEST_LIBRARY_FIXED", "1")
    after, current = run_suite(pytester, "--ls-impl", spec, "-k", EVERY_DTYPE_AND_REDUCTION,
                               "--ls-baseline", str(base_path))
    assert after.ret == 1  # the gate still fails until the record no longer declares the defect
    fixed = sum(c["outcome"] == "xpassed" for c in current["checks"])
    assert fixed == sum(c["outcome"] == "xfailed" for c in baseline["checks"]) > 0
    text = after.stdout.str()
    assert f"0 new failures; {fixed} known defects no longer show: fixed? update the record" in text, text[-3000:]
    current_path = tmp_path / "current.json"
    current_path.write_text(json.dumps(current))
    proc = subprocess.run([sys.executable, "-m", "reports", "compare", str(base_path), str(current_path),
                           "-o", str(tmp_path / "compare.html")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert f"{fixed} known defects no longer show: fixed? update the record" in proc.stdout
    html = (tmp_path / "compare.html").read_text()
    assert 'id="fixed-defects"' in html and "0</strong> new failures" in html


def test_compare_refuses_a_baseline_of_which_nothing_matched(tmp_path):
    results = _failing_results_with_many_skips()
    other = json.loads(json.dumps(results))
    for c in other["checks"]:
        c["impl"] = "another_library"
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, payload in zip(paths, (other, results), strict=True):
        path.write_text(json.dumps(payload))
    proc = subprocess.run([sys.executable, "-m", "reports", "compare", *map(str, paths)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "none of its 301 checks" in proc.stderr


def test_pytest_and_results_json_count_a_known_defect_that_did_not_show_alike(pytester):
    """A declared defect on a drawn check (non-strict) that does not show: passed in both."""
    result, payload = run_suite(pytester, "--ls-impl", f"{IMPLS}:LibraryWithAKnownDefect",
                                "-k", "sum_equals_the_sum_of_none")
    assert result.ret == 0, result.stdout.str()[-3000:]
    checks = [c for c in payload["checks"] if c["check"] == "sum_equals_the_sum_of_none"
              and c["outcome"] != "skipped"]
    assert checks and all(c["outcome"] == "passed" and c["known_defect"] for c in checks)
    counts = result.parseoutcomes()
    assert counts.get("passed") == len(checks) and "xpassed" not in counts, counts
    assert f"ls: results.json: {len(checks)} passed" in result.stdout.str()


def test_a_findings_repro_script_runs_and_prints_the_reference_beside_theirs(pytester, tmp_path):
    _, payload = run_suite(pytester, "--ls-impl", f"{IMPLS}:ShapeAndDenominatorBugs",
                           "-k", EVERY_DTYPE_AND_REDUCTION + " and float64")
    scripts = {f["cause"][0]: f["script"] for f in findings_of(payload, "ShapeAndDenominatorBugs")}
    (tmp_path / "repro.py").write_text(scripts["over_budget"])
    proc = subprocess.run([sys.executable, str(tmp_path / "repro.py")], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs, ours = (float(line.split(":")[1].split()[0]) for line in proc.stdout.splitlines()[:2])
    assert theirs != pytest.approx(ours)  # the wrong denominator, shown by the script alone
    assert "load(" in scripts["over_budget"] and str(IMPLS) in scripts["over_budget"]
    repro = next(f["repro"] for f in findings_of(payload, "ShapeAndDenominatorBugs"))
    assert '--ls-report-dir "$(mktemp -d)"' in repro


def test_what_it_computes_names_the_wrong_axis_and_the_exclusive_convention(pytester):
    result, payload = run_suite(pytester, "--ls-impl", f"{IMPLS}:SmoothsOverTheLastDimension",
                                "--ls-impl", f"{ROOT / 'selftests' / 'impls' / 'dropins.py'}:ExclusiveMassSoldAsPyTorch",
                                "-k", "every_dtype_and_reduction or nd_and_unbatched")
    assert result.ret == 1
    (axis,) = findings_of(payload, "SmoothsOverTheLastDimension")
    assert axis["computed"]["closest"] is None  # no known convention: say what it is instead
    assert axis["computed"]["total"] == pytest.approx(1.45, abs=0.01)  # 1 - 0.1 + 11 x 0.1/2
    assert axis["computed"]["other"] == pytest.approx(0.05, abs=1e-3)
    assert "ε divided by dimension 3 of the (16, 11, 3, 2) input, of size 2" in axis["computes"]
    assert "claims inclusive ε/K = 0.009091" in axis["computes"]
    exclusive = findings_of(payload, "ExclusiveMassSoldAsPyTorch")
    named = [f for f in exclusive if f["computed"] and f["computed"]["closest"] == "exclusive"]
    assert named and "follow the exclusive convention" in named[0]["summary"]
    assert named[0]["computed"]["other"] == pytest.approx(0.1 / 10, rel=1e-3)  # ε/(K-1), K = 11
    assert named[0]["count"] >= 0.9 * sum(f["count"] for f in exclusive)  # value and grad: one cause


def test_a_hypothesis_failure_prints_the_context_in_one_short_line():
    """Hypothesis's "Failing test case" prints its arguments: the record's every field, the
    pool and the deadline made a ~60-line dump (issue 20); now the name and the case."""
    impl = next(iter(catalog.by_name().values()))
    shown = pretty(Context(impl=impl, case=Case(), pool=object(), deadline=123.0))
    assert shown.startswith(f"Context(impl={impl.name!r}, case=Case(") and "\n" not in shown
    assert len(shown) < 400 and "deadline" not in shown and "pool" not in shown
