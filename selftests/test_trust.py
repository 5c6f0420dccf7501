"""Verdicts people can trust: severity (error vs divergence), verdict wording, the suite's
own errors kept apart from the implementation's, determinism, and hostile text. Real suite
runs in subprocesses, as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reference
from lsresults.verdicts import verdict_of
from lsuite.catalogs import catalog
from lsuite.checks.reference import check_against_reference
from lsuite.inputs.cases import Case
from lsuite.judging import severity
from lsuite.judging.assertions import Budget
from lsuite.running.runner import Context

ROOT = Path(__file__).resolve().parents[1]
TRUST = ROOT / "selftests" / "impls" / "trust.py"
DROPINS = ROOT / "selftests" / "impls" / "dropins.py"
EXAMPLE = ROOT / "examples" / "my_label_smoothing.py"


def suite(out: Path, *args, timeout=600, env=None):
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "suites"), f"--rootdir={ROOT}", "-c",
           str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", "-q", f"--ls-report-dir={out}",
           *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})
    path = out / "results.json"
    return proc, (json.loads(path.read_text()) if path.is_file() else None)


# ------------------------------------------------------------------ severity, as units

BUDGET = Budget(1e-6, "test")


def test_nan_versus_inf_at_a_zero_denominator_is_a_divergence_not_an_error():
    assert severity.is_divergence([np.inf], [np.nan], [np.nan], BUDGET, zero_denominator=True)
    assert not severity.is_divergence([np.inf], [np.nan], [np.nan], BUDGET, zero_denominator=False)
    assert not severity.is_divergence([0.0], [np.nan], [np.nan], BUDGET, zero_denominator=True)


def test_a_nan_exactly_where_pytorch_gives_nan_is_a_divergence():
    assert severity.is_divergence([1.0, np.nan], [1.0, 2.0], [1.0, np.nan], BUDGET, False)
    assert not severity.is_divergence([1.0, np.nan], [1.0, 2.0], [1.0, 2.0], BUDGET, False)


def test_a_wrong_finite_value_is_an_error_unless_pytorch_is_as_wrong():
    assert not severity.is_divergence([1.5], [1.0], [1.0], BUDGET, True)
    assert not severity.is_divergence([1.5], [1.0], None, BUDGET, False)
    assert not severity.is_divergence([1.5], [1.0], [1.2], BUDGET, False)  # not what torch does
    assert not severity.is_divergence([1.5], [1.0], [1.5 + 1e-9], BUDGET, False)  # nor bit for bit
    assert severity.is_divergence([1.5], [1.0], [1.5], BUDGET, False)  # exactly what torch does
    assert severity.is_divergence([1.5, np.nan], [1.0, np.nan], [1.5, np.nan], BUDGET, True)


def test_verdict_wording():
    assert verdict_of({"passed": 3}) == "conforms"
    assert verdict_of({"passed": 1, "xfailed": 57}) == "conforms except 57 known defects"
    assert verdict_of({"passed": 1, "xfailed": 1, "divergence": 2}) == \
        "conforms except 1 known defect / 2 divergences"
    assert verdict_of({"passed": 9, "failed": 1, "divergence": 2}) == "fails"
    assert verdict_of({"passed": 9, "xpassed": 1}) == "fails"
    assert verdict_of({"skipped": 4}) == "not checked"


def test_a_reference_failure_is_the_suites_error_and_never_calls_the_implementation(monkeypatch):
    calls = []
    impl = catalog.by_name()["seed000_ce"]

    def build(cfg):
        calls.append(cfg)
        raise AssertionError("must not be built")

    def broken(*args, **kwargs):
        raise ValueError("reference exploded")

    monkeypatch.setattr(reference, "loss_and_grad", broken)
    ctx = Context(impl=impl.__class__(**{**impl.__dict__, "build": build}), case=Case())
    with pytest.raises(severity.SuiteError, match="the suite's own error while computing the "
                                                  "reference, not the implementation's"):
        check_against_reference(ctx)
    assert calls == []


# ------------------------------------------------------------------ severity, end to end

@pytest.fixture(scope="module")
def divergent_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("divergent")
    args = ["--hypothesis-profile=ci", "-k", "zero_total or rejects or every_dtype"]
    for name in ("Float64TorchWrapper", "InfAtZeroWeight"):
        args += ["--ls-impl", f"{TRUST}:{name}"]
    return suite(out, *args), out


def test_correct_code_behaving_like_pytorch_passes_the_gate_with_divergences_listed(divergent_run):
    (proc, payload), out = divergent_run
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert payload["verdicts"]["Float64TorchWrapper"].startswith("conforms except")
    divergent = {(c["impl"], c["check"]) for c in payload["checks"] if c["outcome"] == "divergence"}
    assert ("Float64TorchWrapper", "rejects_negative_smoothing") in divergent
    assert ("InfAtZeroWeight", "zero_total_target_weight") in divergent
    html = (out / "report.html").read_text()
    assert "conforms except" in html and "Divergences" in html


def test_strict_fails_the_gate_on_divergences(tmp_path):
    proc, payload = suite(tmp_path, "-k", "rejects_negative_smoothing", "--ls-strict", "--ls-impl",
                          f"{TRUST}:Float64TorchWrapper")
    assert proc.returncode == 1
    assert {c["outcome"] for c in payload["checks"] if c["outcome"] != "skipped"} == {"failed"}


def test_the_catalog_forum_recipe_does_not_read_conforms(tmp_path):
    proc, payload = suite(tmp_path, "-k", "seed002_forum_kl and not pad0 and every_dtype")
    assert proc.returncode == 0
    assert payload["verdicts"]["seed002_forum_kl"].startswith("conforms except")
    assert "conforms except" in proc.stdout


# ------------------------------------------------------------------ determinism

def _outcomes(payload):
    return {c["nodeid"]: c["outcome"] for c in payload["checks"]}


def test_same_seeds_give_the_same_verdicts_and_xdist_matches_serial(tmp_path):
    args = ["-k", "shifting or every_dtype or permuting", "--hypothesis-seed=7", "--ls-seed=3",
            "--ls-impl", f"{EXAMPLE}:LabelSmoothedCE", "--ls-impl", f"{DROPINS}:NaiveLogSoftmax"]
    _, first = suite(tmp_path / "a", *args)
    _, second = suite(tmp_path / "b", *args)
    _, parallel = suite(tmp_path / "c", *args, "-n", "2")
    assert _outcomes(first) == _outcomes(second) == _outcomes(parallel)
    assert "failed" in _outcomes(first).values(), "the broken drop-in must fail somewhere"


# ------------------------------------------------------------------ hostile text

def test_hostile_text_still_yields_both_files_cut_and_escaped(tmp_path):
    proc, payload = suite(tmp_path, "-k", "every_dtype and float32", "--ls-impl",
                          f"{TRUST}:RaisesHostileText")
    assert proc.returncode == 1 and payload is not None
    message = next(c["message"] for c in payload["checks"] if c["outcome"] == "failed")
    assert len(message) < 30_000 and "cut:" in message and "\\udcff" in message
    assert (tmp_path / "report.html").stat().st_size > 0
    assert "\x1b[31m" not in proc.stdout + proc.stderr
    assert oct((tmp_path / "results.json").stat().st_mode & 0o777) == oct(
        (tmp_path / "report.html").stat().st_mode & 0o777)


# ------------------------------------------------------------------ nothing measured is lost

def test_results_replaced_by_a_directory_are_written_beside_it_and_said_in_one_line(tmp_path):
    proc, payload = suite(tmp_path, "-k", "every_dtype and float64", "--ls-impl",
                          f"{TRUST}:ReplacesTheResultsFiles", env={"LS_SABOTAGE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:]  # the gate's status: the code is correct
    assert payload is None and (tmp_path / "results.json").is_dir()
    assert "Traceback" not in proc.stdout + proc.stderr
    notes = [line for line in proc.stdout.splitlines() if "could not be written" in line]
    assert len(notes) == 2, proc.stdout[-3000:]  # results.json and report.html, a line each
    beside = sorted(tmp_path.glob("results-*.json"))
    assert len(beside) == 1 and str(beside[0]) in notes[0] and "IsADirectoryError" in notes[0]
    written = json.loads(beside[0].read_text())
    assert {c["outcome"] for c in written["checks"]} >= {"passed"}
    assert len(written["checks"]) >= 5 and len(list(tmp_path.glob("report-*.html"))) == 1


def test_the_gate_status_survives_the_fallback(tmp_path):
    proc, _ = suite(tmp_path, "-k", "every_dtype and float64 and mean", "--ls-impl",
                    f"{TRUST}:ReplacesTheResultsFiles", "--ls-impl", f"{DROPINS}:IgnoresSmoothing",
                    env={"LS_SABOTAGE_DIR": str(tmp_path)})
    assert proc.returncode == 1 and "could not be written" in proc.stdout
    assert len(list(tmp_path.glob("results-*.json"))) == 1
