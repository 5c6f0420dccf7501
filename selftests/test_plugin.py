"""The suite run end to end on drop-ins: correct ones pass, broken ones fail naming the
check that caught them, bad SPECs are one-line usage errors, results.json is complete.

Each run is a real `pytest suites/` in a subprocess (pytester), as a user would run it.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lsuite.pytest_plugin import results
from selftests import sweep

ROOT = Path(__file__).resolve().parents[1]
DROPINS = ROOT / "selftests" / "impls" / "dropins.py"
EXAMPLE = ROOT / "examples" / "my_label_smoothing.py"


def run_suite(pytester, *args):
    """Run the suite in a subprocess; return (result, results.json payload or None)."""
    out_dir = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        str(ROOT / "suites"), f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"),
        "-p", "no:cacheprovider", f"--ls-report-dir={out_dir}", *args)
    path = out_dir / "results.json"
    return result, (json.loads(path.read_text()) if path.exists() else None)


def outcomes(payload, impl):
    return {c["nodeid"]: c for c in payload["checks"] if c["impl"] == impl}


def failed_checks(payload, impl):
    return {c["check"] for c in outcomes(payload, impl).values() if c["outcome"] in ("failed", "error")}


CORRECT = {"LabelSmoothedCE": EXAMPLE, "TargetDistributionCE": DROPINS,  # written independently
           "Float32RoundOnceCE": DROPINS}  # the careful kernel low-precision budgets anchor to


# Both compute in the input dtype with torch's CPU kernels, which round softmax to
# bfloat16/float16 before subtracting the target: on the confident rows they return, bit for
# bit, what PyTorch's own primitives return (lsuite/catalogs/catalog.py, TORCH_CPU_ROUNDS_SOFTMAX):
# divergences of PyTorch on this CPU, never errors of the drop-ins.
TORCH_BACKED = {"LabelSmoothedCE", "TargetDistributionCE"}
CONFIDENT_ROWS = "confident_rows_keep_the_true_class_gradient"
ZERO_TOTAL = "at_a_zero_total_target_weight"
# PyTorch's CPU float16 value at K = 65537 errs by more than 3x the attainable error (a
# drop-in computing with its kernels returns it bit for bit: a divergence, issue 24)
TORCH_DIVERGES = {CONFIDENT_ROWS, "vocabularies_past_powers_of_two_in_half_precision",
                  "llm_sized_vocabularies_in_half_precision"}


def test_correct_drop_ins_pass_every_check(pytester):
    args = [arg for name, path in CORRECT.items() for arg in ("--ls-impl", f"{path}:{name}")]
    result, payload = run_suite(pytester, *args)
    for name in CORRECT:
        checks = list(outcomes(payload, name).values())
        passed = [c for c in checks if c["outcome"] == "passed"]
        assert len(passed) >= 100, f"{name}: only {len(passed)} checks passed: too little checked"
        failed = [c for c in checks if c["outcome"] not in ("passed", "skipped", "divergence")]
        assert not failed, [c["nodeid"] for c in failed]
        divergent = [c for c in checks if c["outcome"] == "divergence"]
        # NaN where the mathematics says +inf: a mean over zero total target weight (issue 24)
        divergent = [c for c in divergent if not c["check"].endswith(ZERO_TOTAL)]
        if name in TORCH_BACKED:  # only the confident rows and LLM sizes, in half precision
            assert divergent and all(c["check"] in TORCH_DIVERGES for c in divergent)
        else:
            assert not divergent, [c["nodeid"] for c in divergent]
        assert all(c["metrics"]["grad_max_abs_err"] is not None for c in passed
                   if c["check"].startswith("value_and_gradient"))
    assert result.ret == 0, result.stdout.str()[-3000:]


RECORDS = ROOT / "selftests" / "impls" / "records.py"
MUTANTS_DIR = ROOT / "reports" / "mutants"  # results.json, report.html, catching.json of the run

# mutant -> (the check that must catch it, words its message must contain). Each is a bug
# pattern seen in the field (docs/specification.md §6-7); the attribute names are in impls/.
CAUGHT_BY = {
    "ExclusiveMassSoldAsPyTorch": ("value_and_gradient_in_every_dtype_and_reduction", "value"),
    "TrueClassLosesItsShare": ("value_and_gradient_in_every_dtype_and_reduction", "value"),
    "IgnoresSmoothing": ("value_and_gradient_across_smoothing_strengths", "value"),
    "MeanOverAllRows": ("ignored_targets_follow_the_convention", "value"),
    "MeanOverCountNotWeights": ("class_weights_follow_the_convention", "value"),
    "SmoothingCountsIgnoredRows": ("ignored_targets_follow_the_convention", "value"),
    "WeightsDroppedFromSmoothing": ("class_weights_follow_the_convention", "value"),
    "DetachedSmoothingTerm": ("value_and_gradient_across_smoothing_strengths", "grad: max abs error"),
    "LogOfSoftmax": ("confident_extreme_and_masked_logits_in_every_dtype", "should be"),
    "SoftmaxWithoutMaxShift": ("confident_extreme_and_masked_logits_in_every_dtype", "NaN/inf"),
    "NoSmoothingValidation": ("rejects_smoothing_above_one", "but should raise"),
    "ClampsOutOfRangeTargets": ("rejects_negative_targets_other_than_ignore_index", "but should raise"),
    "ClassesFromLastDim": ("value_and_gradient_for_nd_and_unbatched_inputs", "raised"),
    "NonZeroNoneOnIgnoredRows": ("ignored_targets_follow_the_convention", "value"),
    "CustomBackwardForgetsDenominator": ("value_and_gradient_in_every_dtype_and_reduction", "grad: max abs error"),
    "NaNSumWhenAllIgnored": ("ignored_targets_follow_the_convention", "NaN/inf"),
    "ReturnsNaN": ("value_and_gradient_in_every_dtype_and_reduction", "NaN"),
    "ReturnsPerRowForMean": ("value_and_gradient_in_every_dtype_and_reduction", "out.shape"),
    "ReturnsPythonFloat": ("value_and_gradient_in_every_dtype_and_reduction", "should be a torch.Tensor"),
    "ReturnsFloat32ForEveryDtype": ("value_and_gradient_in_every_dtype_and_reduction", "out.dtype=torch.float32"),
    "MutatesLogits": ("value_and_gradient_in_every_dtype_and_reduction", "mutated its input"),
    "Raises": ("value_and_gradient_in_every_dtype_and_reduction", "calling it raised RuntimeError"),
    "KLDivFedLogits": ("value_and_gradient_in_every_dtype_and_reduction", "value"),
    "RestoresItsMutation": ("value_and_gradient_in_every_dtype_and_reduction", "version counter moved"),
    "RejectsWithRecursionError": ("rejects_targets_at_or_above_the_class_count", "raised RecursionError"),
    "KLDivMeanNotBatchmean": ("value_and_gradient_in_every_dtype_and_reduction", "value"),
    "RoundsSoftmaxBeforeSubtracting": ("confident_rows_keep_the_true_class_gradient", "x attainable"),
    # losses beyond one logits tensor (selftests/impls/beyond.py)
    "LinearWeightGradMissesSmoothing": ("linear_value_and_gradients_in_every_dtype_and_reduction",
                                        "grad_classifier: max abs error"),
    "LinearBiasGradWrongDenominator": ("linear_ignored_targets_follow_the_convention",
                                       "grad_bias: max abs error"),
    "VocabParallelLocalSmoothing": ("shards_value_and_gradient_in_every_dtype_and_reduction",
                                    "rank 0 of 2: value"),
    "VocabParallelLocalWidth": ("shards_value_and_gradient_in_every_dtype_and_reduction",
                                "rank 0 of 2: value"),
    "VocabParallelRankDependent": ("shards_value_and_gradient_in_every_dtype_and_reduction",
                                   "ranks disagree"),
}
RECORD_MUTANTS = {"KLDivFedLogits", "KLDivMeanNotBatchmean"}
BEYOND = ROOT / "selftests" / "impls" / "beyond.py"
BEYOND_MUTANTS = {"LinearWeightGradMissesSmoothing", "LinearBiasGradWrongDenominator",
                  "VocabParallelLocalSmoothing", "VocabParallelLocalWidth", "VocabParallelRankDependent"}


def _mutant_file(name):
    return BEYOND if name in BEYOND_MUTANTS else RECORDS if name in RECORD_MUTANTS else DROPINS


def _named_checks() -> list[str]:
    """-k for the checks named in CAUGHT_BY (each mutant runs through all of them)."""
    return [] if sweep.SWEEP else ["-k", " or ".join(sorted({check for check, _ in CAUGHT_BY.values()}))]


@pytest.fixture(scope="module")
def mutant_run():
    """One suite run over every mutant at once (-n 2); its results stay in reports/mutants/.
    It runs the checks named in CAUGHT_BY, or, with LS_SELFTEST_SWEEP=1, every check (then
    catching.json is the whole mutant -> catching-checks table)."""
    args = _named_checks()
    for name in CAUGHT_BY:
        args += ["--ls-impl", f"{_mutant_file(name)}:{name}"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "suites"), f"--rootdir={ROOT}", "-c",
         str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", "-q", "-n", "2",
         # the invariants have their own broken drop-ins (test_strategies.py); every check
         # named in CAUGHT_BY is a reference comparison or an argument check
         "--ignore", str(ROOT / "suites" / "test_invariants.py"),
         "--ignore", str(ROOT / "suites" / "test_equivalences.py"),
         "--ignore", str(ROOT / "suites" / "test_benchmarks.py"),
         f"--ls-report-dir={MUTANTS_DIR}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=1800 if sweep.SWEEP else 900)
    payload = json.loads((MUTANTS_DIR / "results.json").read_text())
    table = {name: sorted(failed_checks(payload, name)) for name in CAUGHT_BY}
    (MUTANTS_DIR / "catching.json").write_text(json.dumps(table, indent=1))
    return proc, payload


def test_mutant_run_fails_and_records_every_mutant(mutant_run):
    proc, payload = mutant_run
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert set(CAUGHT_BY) == {c["impl"] for c in payload["checks"]}


@pytest.mark.parametrize("mutant", sorted(CAUGHT_BY))
def test_every_mutant_is_caught_by_the_named_check(mutant_run, mutant):
    _, payload = mutant_run
    check, words = CAUGHT_BY[mutant]
    assert check in failed_checks(payload, mutant), sorted(failed_checks(payload, mutant))
    messages = [c["message"] for c in outcomes(payload, mutant).values()
                if c["check"] == check and c["outcome"] == "failed"]
    assert any(words in m for m in messages), messages[:3]


def test_hanging_implementation_fails_its_checks_and_the_run_goes_on(pytester):
    """The hang's record cuts --ls-timeout to 1 s for its checks; the correct drop-in keeps
    20 s (a 1 s limit for both once timed out a correct check under load)."""
    result, payload = run_suite(pytester, "--ls-impl", f"{DROPINS}:HangsBriefly",
                                "--ls-impl", f"{EXAMPLE}:LabelSmoothedCE", "--ls-timeout=20",
                                "-k", "every_dtype and (HangsBriefly-cpu-float32 or LabelSmoothedCE)")
    hung = sorted(outcomes(payload, "HangsBriefly").values(), key=lambda c: c["nodeid"])
    assert result.ret == 1
    assert hung and all(c["outcome"] == "failed" for c in hung)
    timed_out = [c for c in hung if "Timeout" in c["message"]]
    assert len(timed_out) == 1, "the first hang is killed at the limit; the rest are not run"
    assert float(re.search(r"no answer within ([\d.]+) s", timed_out[0]["message"]).group(1)) <= 1
    assert all("not run: it hung in" in c["message"] for c in hung if c not in timed_out)
    assert any(c["outcome"] == "passed" for c in outcomes(payload, "LabelSmoothedCE").values())


@pytest.mark.parametrize("spec, words", [
    ("no_such_module_xyz:Loss", "No module named 'no_such_module_xyz'"),
    (f"{DROPINS}:Missing", "has no attribute 'Missing'"),
    (f"{DROPINS}:NOT_CALLABLE", "is a float; expected an lsuite.Impl record"),
    ("just_a_name", "expected MODULE:ATTR"),
    ("missing/file.py:X", "no file missing/file.py"),
])
def test_bad_spec_is_a_one_line_usage_error(pytester, spec, words):
    result, payload = run_suite(pytester, "--ls-impl", spec)
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert len(errors) == 1 and words in errors[0], result.stderr.str()
    assert "Traceback" not in result.stderr.str() and payload is None


def test_ls_impl_env_var_and_list(pytester, monkeypatch):
    monkeypatch.setenv("LS_IMPL", f"{EXAMPLE}:LabelSmoothedCE")
    result = pytester.runpytest_subprocess(
        str(ROOT / "suites"), f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"),
        "--ls-list", "--ls-builtins")
    text = result.stdout.str()
    assert result.ret == 0
    assert "LabelSmoothedCE: inclusive ce on logits" in text
    assert "seed002_forum_kl: padding_excluded kl on log_probs" in text
    assert "known defect" in text


def test_results_json_is_complete_and_the_same_under_xdist(pytester):
    spec = f"{EXAMPLE}:LabelSmoothedCE"
    _, serial = run_suite(pytester, "--ls-impl", spec, "-k", "dtype or argument")
    _, parallel = run_suite(pytester, "--ls-impl", spec, "-k", "dtype or argument", "-n", "2")
    assert serial["schema"] == results.SCHEMA == 2 and serial["complete"] is True
    for key in ("torch", "numpy", "cuda", "seed", "impls", "command", "suite_commit"):
        assert key in serial["environment"]
    entry = serial["checks"][0]
    assert set(entry) >= {"impl", "check", "nodeid", "outcome", "params", "metrics", "message"}
    assert {c["nodeid"]: c["outcome"] for c in serial["checks"]} == \
        {c["nodeid"]: c["outcome"] for c in parallel["checks"]}
    assert parallel["environment"]["workers"] == 2


def test_results_and_report_are_world_readable_and_record_kinds_and_examples(pytester):
    old = os.umask(0o022)  # the usual umask; the run inherits it
    try:
        _, payload = run_suite(pytester, "--ls-impl", f"{EXAMPLE}:LabelSmoothedCE", "--ls-builtins",
                               "-k", "LabelSmoothedCE-cpu-float64-mean or kl_is_ce")
    finally:
        os.umask(old)
    for name in ("results.json", "report.html"):
        mode = (pytester.path / "out" / name).stat().st_mode
        assert mode & 0o044 == 0o044, f"{name}: mode {mode & 0o777:o}"
    kinds = {c["check"]: c["kind"] for c in payload["checks"]}
    assert all(isinstance(k, str) and k for k in kinds.values()), kinds
    assert any(k == "equivalence" for name, k in kinds.items() if "kl_is_ce" in name), kinds
    impls = {i["name"]: i["example_target"] for i in payload["environment"]["impls"]}
    assert impls["LabelSmoothedCE"]["q"] == pytest.approx([0.02, 0.92, 0.02, 0.02, 0.02])
    assert impls["seed000_quiz_exclusive"]["q"] == pytest.approx([0.025, 0.9, 0.025, 0.025, 0.025])
    assert impls["seed002_forum_kl"]["error"] is None


def test_markup_in_an_implementations_exception_is_shown_as_text(pytester):
    result, payload = run_suite(pytester, "--ls-impl", f"{DROPINS}:RaisesMarkup", "-k", "every_dtype")
    html = (pytester.path / "out" / "report.html").read_text()
    assert result.ret == 1
    assert any("<script>alert('ls')</script>" in c["message"] for c in payload["checks"])
    assert "<script>alert" not in html and "&lt;script&gt;alert(" in html
