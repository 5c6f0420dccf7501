"""Code written elsewhere (issue 24): correct drop-ins in forms the suite had not seen pass,
broken ones modelled on real kernel bugs fail, every time. Real suite runs in subprocesses,
as a user runs them."""

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lsuite.catalogs import loading
from lsuite.checks import properties as pp
from lsuite.checks.reference import check_against_reference
from lsuite.inputs.cases import default_case, supports
from lsuite.judging import severity
from lsuite.judging import zero_denominator as zd
from lsuite.running.runner import CheckFailed, Context
from selftests import sweep
from selftests.impls import kernels

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


# ------------------------------------------------------------------ a wrong shape is one finding

def test_a_wrong_output_shape_is_one_finding_and_the_invariants_on_it_are_not_run(tmp_path):
    proc, payload = suite(tmp_path, "--ignore", str(ROOT / "suites" / "test_benchmarks.py"),
                          "--hypothesis-seed=1", "-k", "every_dtype or not test_conformance",
                          *impls("NoneKeepsAColumn"))
    checks = [c for c in payload["checks"] if c["impl"] == "NoneKeepsAColumn"]
    found = [c for c in checks if c["outcome"] == "failed"]
    assert found and all("out.shape=" in c["message"] for c in found), [c["message"][:200] for c in found]
    assert all(c["params"]["reduction"] == "none" for c in found)
    assert {c["kind"] for c in found} == {"reference"}, [c["nodeid"] for c in found]
    not_run = [c for c in checks if "not run: the output shape is wrong" in c["message"]]
    assert len(not_run) >= 10 and all(c["outcome"] == "skipped" for c in not_run)
    assert all("test_value_and_gradient_in_every_dtype_and_reduction[NoneKeepsAColumn-cpu-"
               in c["message"] for c in not_run)
    text = proc.stdout + json.dumps(payload)
    assert "IndexError" not in text and "should be >=" not in text
    assert proc.returncode == 1


# ------------------------------------------------------------------ budgets at an exact zero

def test_float32_arithmetic_at_an_exact_zero_is_judged_against_the_terms_that_cancel(tmp_path):
    """K = 1, eps > 0: the value LSE(z) - z_y is exactly 0; a record that claims float32
    arithmetic rounds the O(|z|) terms by 2-3e-7, within float32's attainable error of them
    (it failed against an absolute 1e-7 before issue 24). A float32 rounding at float64 without
    that claim stays an error."""
    proc, payload = suite(tmp_path, "-k", "degenerate_vocabularies and K1",
                          *impls("MixedPrecisionRecord", "LabelLogitInFloat64"))
    claimed = outcomes(payload, "MixedPrecisionRecord")
    assert claimed and set(claimed.values()) == {"passed"}, claimed
    unclaimed = [c for c in payload["checks"] if c["impl"] == "LabelLogitInFloat64"
                 and c["params"]["reduction"] in ("none", "sum") and c["params"]["device"] == "cpu"]
    assert unclaimed and all(c["outcome"] == "failed" for c in unclaimed)


# ------------------------------------------------------------------ nothing checked is visible

def test_an_implementation_with_nothing_checked_is_said_everywhere_and_can_fail_the_gate(tmp_path):
    args = ["-k", "every_dtype", *impls("CudaOnly", "SumOverWeightCE")]
    proc, payload = suite(tmp_path / "plain", *args)
    if payload["environment"]["cuda"]["available"]:
        return  # CUDA present: the record is checked
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert set(payload["not_checked"]) == {"CudaOnly"}
    assert "no CUDA device" in payload["not_checked"]["CudaOnly"]
    assert payload["verdicts"]["CudaOnly"] == "not checked"
    assert "ls: NOTHING CHECKED for CudaOnly" in proc.stdout
    html = (tmp_path / "plain" / "report.html").read_text()
    assert 'id="not-checked-banner"' in html and "<code>CudaOnly</code>" in html
    proc, payload = suite(tmp_path / "required", *args, "--ls-require-checked")
    assert proc.returncode == 1 and "fails the gate (--ls-require-checked)" in proc.stdout
    proc, _ = suite(tmp_path / "checked", "-k", "every_dtype", "--ls-require-checked",
                    *impls("SumOverWeightCE"))
    assert proc.returncode == 0 and "NOTHING CHECKED" not in proc.stdout


# ------------------------------------------------------------------ LLM vocabularies in half precision

def test_a_float16_smoothing_sum_overflow_at_k_32000_fails_and_a_float32_kernel_passes(tmp_path):
    proc, payload = suite(tmp_path, "-k", "half_precision", *impls("SmpSoftCrossEntropy"),
                          "--ls-impl", f"{ROOT / 'selftests' / 'impls' / 'dropins.py'}:Float32RoundOnceCE")
    careful = outcomes(payload, "Float32RoundOnceCE")
    assert careful and set(careful.values()) == {"passed"}, careful
    smp = {c["nodeid"]: c for c in payload["checks"] if c["impl"] == "SmpSoftCrossEntropy"}
    overflow = [c for n, c in smp.items() if "-cpu-float16-K32000-eps0.0" in n]
    assert overflow and all(c["outcome"] == "failed" and "NaN" in c["message"] for c in overflow)
    assert proc.returncode == 1


# ------------------------------------------------------------------ ten seeds, correct and broken

KERNELS = ROOT / "selftests" / "impls" / "kernels.py"
CORRECT_ELSEWHERE = ("OnlineSoftmaxCE", "HandBackwardFloat64CE", "DistributionsCE")
SEEDS = tuple(range(10))
QUICK_SEEDS = SEEDS[:2]  # without LS_SELFTEST_SWEEP=1 (selftests/sweep.py): CI's seeds
SCALAR = ("mean", "sum")
# broken drop-in -> the axes of the suite check that must catch it (its ls_cases marker,
# suites/), each drop-in modelled on a reported bug (selftests/impls/)
BROKEN_ELSEWHERE = {
    "GradOutputIgnoredWhenReduced": dict(upstream=("scaled",), reduction=SCALAR, dtype=("float64",)),
    "GradOutputFirstElement": dict(reduction=("none",)),
    "GradOutputAssumedContiguous": dict(upstream=("strided",), reduction=("none",), layout=("2d", "nd")),
    "TailBlockSkipped": dict(block=(4096, 16384), K=(6147, 20483), N=(3,), dtype=("float32",),
                             reduction=("mean", "none"), weight=("none", "random")),
    "ChunkedMeanOfMeans": dict(N=(4099,), K=(33,), ignore=("negative",), spread=("uneven",),
                               weight=("none", "random"), reduction=("mean",), dtype=("float32",)),
    "LastProgramDropped": dict(N=(4099,), K=(33,), ignore=("negative",), spread=("uneven",),
                               weight=("none", "random"), reduction=("mean", "sum", "none"),
                               dtype=("float32",)),
    "IfIgnoreIndexTruthy": dict(ignore=("zero",), weight=("none", "random"), eps=(0.0, 0.1),
                                reduction=("mean", "sum", "none"), dtype=("float32",)),
    "PaddingWeightZeroed": dict(ignore=("zero",), weight=("none", "random"), eps=(0.0, 0.1),
                                reduction=("mean", "sum", "none"), dtype=("float32",)),
    "IgnoredRowsKeepTheirGradient": dict(ignore=("negative", "in_range"), reduction=("mean", "sum", "none")),
    "SmpSoftCrossEntropy": dict(dtype=("float16",), K=(32000,), eps=(0.0, 0.1), N=(4,)),
    "NoneKeepsAColumn": dict(reduction=("none",)),
}


def _spec(name):
    return f"{KERNELS if hasattr(kernels, name) else ELSEWHERE}:{name}"


def _cases(impl, axes):
    """The cpu cases an ls_cases marker with these axes generates for the record."""
    base = default_case(impl)
    for combo in itertools.product(*axes.values()):
        case = base.replace(**dict(zip(axes, combo, strict=True)))
        if supports(impl, case) is None:
            yield case


def _caught(impl, axes, seed) -> list[str]:
    """What the reference check says on each case (in this process, --ls-seed=seed)."""
    found = []
    for case in _cases(impl, axes):
        try:
            check_against_reference(Context(impl=impl, case=case, seed=seed))
        except CheckFailed as exc:
            if not isinstance(exc, severity.CheckDiverged):
                found.append(exc.what)
    return found


@pytest.mark.parametrize("seed", sweep.seeds(SEEDS, QUICK_SEEDS))
def test_correct_code_from_elsewhere_passes_under_every_seed(tmp_path, seed):
    """The drawn invariants under ten Hypothesis seeds (and the kernel edges' fixed cases
    under the first), three correct drop-ins written as kernels and libraries write them.
    One suite run per seed: the first two run by default, the other eight skip unless
    LS_SELFTEST_SWEEP=1."""
    select = "test_invariants or kernel_edges" if seed == SEEDS[0] else "test_invariants"
    args = ["-k", select, f"--hypothesis-seed={seed}", f"--ls-seed={seed}",
            "--ignore", str(ROOT / "suites" / "test_benchmarks.py")]
    proc, payload = suite(tmp_path, *args, *[a for n in CORRECT_ELSEWHERE for a in ("--ls-impl", _spec(n))])
    for name in CORRECT_ELSEWHERE:
        bad = [c["nodeid"] for c in payload["checks"] if c["impl"] == name
               and c["outcome"] in ("failed", "error", "xpassed")]
        assert not bad and payload["verdicts"][name] != "fails", (seed, name, bad)
        assert sum(c["impl"] == name and c["outcome"] == "passed" for c in payload["checks"]) >= 40
    assert proc.returncode == 0


@pytest.mark.parametrize("name", sorted(BROKEN_ELSEWHERE))
def test_broken_code_from_elsewhere_fails_under_every_seed(name):
    """Each broken drop-in fails the check built for its kind of bug, whatever the seed of
    the cases' inputs (--ls-seed 0..9 with LS_SELFTEST_SWEEP=1, else 0 and 1); in the suite's
    own process, for speed."""
    impl = loading.load(_spec(name), set())
    for seed in SEEDS if sweep.SWEEP else QUICK_SEEDS:
        assert _caught(impl, BROKEN_ELSEWHERE[name], seed), (name, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_clamped_denominator_fails_the_zero_total_weight_invariant_under_every_seed(seed):
    impl = loading.load(_spec("ClampedDenominatorCE"), set())
    case = default_case(impl).replace(reduction="mean", weight="zero_total", N=4)
    ctx = Context(impl=impl, case=case, seed=seed)
    with pytest.raises(CheckFailed, match="should be inf") as caught:
        pp.affine_in_smoothing(ctx, zd.zero_total_sample(ctx), fixed=True)
    assert not isinstance(caught.value, severity.CheckDiverged)


# ------------------------------------------------------------------ interpreted Triton

TRITON_CE = ROOT / "selftests" / "impls" / "triton_ce.py"


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_interpreted_triton_is_typed_as_compiled_and_the_in_place_bf16_store_still_fails(tmp_path):
    """A kernel that scales bfloat16 logits by a float argument got 12 interpreter-made
    bfloat16 failures before lsuite/catalogs/triton_typing.py; now none, while the Liger-Kernel PR
    #1268 pattern (a bfloat16 in-place true-class gradient) still fails."""
    proc, payload = suite(tmp_path, "-k", "every_dtype or confident",
                          "--ls-impl", f"{TRITON_CE}:TritonRowCERecord",
                          "--ls-impl", f"{TRITON_CE}:InPlaceBf16TrueClassRecord")
    if payload["environment"]["cuda"]["available"]:
        pytest.skip("CUDA present: Triton runs compiled")
    assert "typed as compiled Triton" in payload["environment"]["triton"]
    careful = outcomes(payload, "TritonRowCERecord")
    assert careful and set(careful.values()) == {"passed"}, careful
    assert any(c["params"]["dtype"] == "bfloat16" for c in payload["checks"]
               if c["impl"] == "TritonRowCERecord" and c["outcome"] == "passed")
    broken = {c["check"] for c in payload["checks"]
              if c["impl"] == "InPlaceBf16TrueClassRecord" and c["outcome"] == "failed"}
    assert "confident_rows_keep_the_true_class_gradient" in broken
    assert proc.returncode == 1
