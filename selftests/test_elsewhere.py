"""Code written elsewhere (issue 24): correct drop-ins in forms the suite had not seen pass,
broken ones modelled on real kernel bugs fail, every time. Real suite runs in subprocesses,
as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ELSEWHERE = ROOT / "selftests" / "impls" / "elsewhere.py"


def suite(out: Path, *args, timeout=600):
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "suites"), f"--rootdir={ROOT}", "-c",
           str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", "-q", f"--ls-report-dir={out}",
           *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    path = out / "results.json"
    return proc, (json.loads(path.read_text()) if path.is_file() else None)


def impls(*names):
    return [arg for name in names for arg in ("--ls-impl", f"{ELSEWHERE}:{name}")]


def outcomes(payload, impl):
    return {c["check"]: c["outcome"] for c in payload["checks"]
            if c["impl"] == impl and c["outcome"] != "skipped"}


# ------------------------------------------------------------------ one severity rule

def test_a_mean_over_zero_total_weight_is_inf_and_pytorchs_nan_a_divergence(tmp_path):
    """Σ per-row loss / Σ w_y returns +inf where the total target weight is 0 and the
    smoothing numerator is not: the mathematics. PyTorch's NaN there is a divergence; a
    clamped denominator's huge finite value is an error, in the fixed cases and in the
    drawn ones."""
    proc, payload = suite(tmp_path, "-k", "zero_total or affine or mean_equals", "--ls-builtins",
                          "--hypothesis-seed=3", *impls("SumOverWeightCE", "ClampedDenominatorCE"))
    fixed = ("loss_is_affine_in_smoothing_at_a_zero_total_target_weight",
             "mean_equals_sum_over_the_denominator_at_a_zero_total_target_weight")
    correct = outcomes(payload, "SumOverWeightCE")
    assert "failed" not in correct.values() and set(fixed) <= set(correct), correct
    assert payload["verdicts"]["SumOverWeightCE"] != "fails"
    broken = outcomes(payload, "ClampedDenominatorCE")
    assert all(broken[check] == "failed" for check in fixed), broken
    torch_ce = outcomes(payload, "seed002_ce_weighted")
    assert all(torch_ce[check] == "divergence" for check in fixed), torch_ce
    assert proc.returncode == 1  # the broken one
