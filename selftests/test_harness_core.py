"""The suite's own building blocks: the one assertion, the one runner, the adversarial
vocabulary, Case validation, self-describing known-defect predicates, and SPEC loading.
Each test shows the piece failing where it must, not only passing where it may."""

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsuite import KnownDefect
from lsuite.catalogs import catalog, loading, peers
from lsuite.checks import properties
from lsuite.inputs.adversarial import adversarial_logits
from lsuite.inputs.cases import Case
from lsuite.inputs.predicates import when
from lsuite.inputs.strategies import Sample
from lsuite.judging import assertions, tolerances
from lsuite.running.runner import CheckFailed, Context, Feed, run

ROOT = Path(__file__).resolve().parents[1]
BUDGET = assertions.Budget(1e-3, "test budget")


# ------------------------------------------------------------------ the one assertion

def test_nan_pattern_is_judged_before_values():
    message = assertions.problem("grad", [1.0, np.nan, 3.0], [1.0, 2.0, 3.0], BUDGET)
    assert message.startswith("grad[1]=nan, but should be 2.0") and "1/3 elements" in message


def test_infinity_of_the_wrong_sign_is_a_pattern_mismatch_and_equal_infinities_are_not():
    assert assertions.problem("value", [np.inf], [-np.inf], BUDGET) is not None
    assert assertions.problem("value", [np.inf, np.nan], [np.inf, np.nan], BUDGET) is None


def test_over_budget_names_the_budget_the_worst_element_and_the_count():
    actual = np.array([[0.0, 0.1], [0.002, 0.0005]])
    message = assertions.problem("value", actual, np.zeros((2, 2)), BUDGET)
    assert "max abs error 0.1 at [0, 1]" in message
    assert "budget 0.001 (test budget)" in message and "2/4 elements over budget" in message


def test_assert_close_raises_the_callers_failure_and_returns_the_measured_difference():
    with pytest.raises(CheckFailed):
        assertions.assert_close("v", [2.0], [1.0], BUDGET, fail=CheckFailed)
    diff = assertions.assert_close("v", [1.0005, 4.0], [1.0, 4.0], BUDGET)
    assert math.isclose(diff.max_abs, 5e-4, rel_tol=1e-6) and diff.scale == 4.0
    assert assertions.problem("v", [1.0, 2.0], [1.0], BUDGET).startswith("v: actual shape (2,)")


def test_empty_arrays_compare_equal():
    assert assertions.problem("value", np.zeros((0, 3)), np.zeros((0, 3)), BUDGET) is None


def test_tolerance_budget_says_which_bound_decided():
    assert tolerances.budget("bfloat16", 1.0, 2.1e-5).how == "3 x attainable 2.1e-05"
    assert tolerances.budget("float16", 1.0, 1e-6).allowed == pytest.approx(3e-6)
    assert tolerances.budget("float32", 1.0).how.startswith("floor")
    assert tolerances.budget("float32", 1.0, baseline=1.0).how == "4 x PyTorch's own error 1"
    assert tolerances.budget("float64", 1.0).allowed == pytest.approx(1e-10 + 1e-12)
    with pytest.raises(ValueError, match="attainable"):
        tolerances.budget("bfloat16", 1.0)


# ------------------------------------------------------------------ the one runner

def _ctx(build, **case):
    impl = catalog.by_name()["seed000_ce"]
    from dataclasses import replace
    return Context(impl=replace(impl, build=build), case=Case(**case))


FEED = Feed.of_logits(np.array([[1.0, 2.0, 0.5]]), np.array([1]), expect_shape=())


def test_runner_returns_value_and_gradient_of_a_correct_loss():
    out = run(_ctx(lambda cfg: torch.nn.CrossEntropyLoss(label_smoothing=cfg.eps), K=3), FEED)
    assert out.value.shape == () and out.grad.shape == (1, 3) and out.notes == ()
    assert abs(out.grad.sum()) < 1e-12


@pytest.mark.parametrize("loss, words", [
    (lambda z, y: 1.0, "should be a torch.Tensor"),
    (lambda z, y: z.sum(dim=1), "out.shape=(1,), but should be ()"),
    (lambda z, y: z.detach().sum(), "requires_grad=False"),
    (lambda z, y: (z.data.mul_(2), z.sum())[1], "mutated its input"),
    (lambda z, y: (_ for _ in ()).throw(RuntimeError("boom")), "calling it raised RuntimeError: boom"),
])
def test_runner_turns_misbehaviour_into_a_failed_check(loss, words):
    with pytest.raises(CheckFailed, match=words.replace("(", r"\(").replace(")", r"\)")):
        run(_ctx(lambda cfg: loss, K=3), FEED)


def test_runner_reports_the_wrong_output_dtype_as_a_note():
    out = run(_ctx(lambda cfg: lambda z, y: z.float().sum(), K=3), FEED)
    assert out.notes == ("out.dtype=torch.float32, but should be torch.float64 like the logits",)


# ------------------------------------------------------------------ vocabulary and cases

def test_adversarial_logits_confident_row_has_the_promised_probability():
    rows = np.array([[0.3, -1.0, 2.0, 0.0]])
    is_target = np.arange(4) == 2
    z = adversarial_logits("confident", rows, is_target[None, :], miss=1e-3)
    assert math.isclose(np.exp(z[0, 2] - np.logaddexp.reduce(z[0])), 1 - 1e-3, rel_tol=1e-12)
    masked = adversarial_logits("masked", rows, is_target[None, :], mask=np.ones((1, 4), bool))
    assert np.isfinite(masked[0, 2]) and np.isinf(masked[0, [0, 1, 3]]).all()
    with pytest.raises(ValueError, match="logit kind 'loud'"):
        adversarial_logits("loud", rows, is_target[None, :])


@pytest.mark.parametrize("field, value", [("logits", "confidnet"), ("dtype", "float8"),
                                          ("K", 0), ("N", -1), ("eps", float("nan")),
                                          ("reduction", "avg")])
def test_a_typo_in_a_case_is_an_error_not_an_ordinary_case(field, value):
    with pytest.raises(ValueError, match=f"{field}="):
        Case(**{field: value})


# ------------------------------------------------------------------ known defects as data

def test_predicate_text_is_generated_from_the_predicate():
    pred = (when.dtype == "float64") & ((when.N > 0) | (when.layout == "unbatched"))
    assert str(pred) == "dtype == 'float64' and (N > 0 or layout == 'unbatched')"
    assert pred(Case(N=3)) and pred(Case(N=0, layout="unbatched")) and not pred(Case(N=0))
    assert not pred(Case(dtype="float32"))
    assert str(~(when.K <= 2)) == "not K <= 2"
    with pytest.raises(AttributeError, match="Case has no field 'colour'"):
        when.colour  # noqa: B018


def test_known_defect_covers_by_name_or_kind_and_describes_its_predicate():
    defect = KnownDefect("r", checks=("a",), kinds=("invariant",), when=when.K == 2)
    assert defect.covers("a", "reference", Case(K=2)) and defect.covers("b", "invariant", Case(K=2))
    assert not defect.covers("b", "reference", Case(K=2)) and not defect.covers("a", "reference", Case())
    assert defect.when_text == "K == 2"
    with pytest.raises(ValueError, match="kinds"):
        KnownDefect("r", kinds=("conformance",))


def test_every_catalog_defect_names_existing_checks():
    """The catalogs' check names exist in suites/ (the plugin warns at run time as well)."""
    text = "".join(p.read_text() for p in (ROOT / "suites").glob("test_*.py"))
    for impl in catalog.CATALOG + peers.PEERS:
        for defect in impl.known_defects:
            for name in defect.checks:
                assert f"def test_{name}(" in text, (impl.name, name)


def test_a_stale_known_defect_name_is_warned_about(tmp_path):
    record = tmp_path / "stale.py"
    record.write_text(
        "import torch\nfrom lsuite import Impl, KnownDefect\n"
        "STALE = Impl(name='stale', build=lambda cfg: torch.nn.CrossEntropyLoss("
        "label_smoothing=cfg.eps, reduction=cfg.reduction), convention='inclusive', form='ce',"
        " known_defects=(KnownDefect('gone', checks=('no_such_check',)),))\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "suites"), f"--rootdir={ROOT}", "-c",
         str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", "--collect-only", "-q",
         f"--ls-impl={record}:STALE"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "StaleKnownDefect" in proc.stdout and "'no_such_check'" in proc.stdout, proc.stdout[-2000:]


# ------------------------------------------------------------------ loading

def test_a_drop_in_taking_kwargs_needs_a_record():
    def factory(label_smoothing=0.0, **kwargs):
        return torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    with pytest.raises(loading.SpecError, match=r"\*\*kwargs.*lsuite.Impl record") as info:
        loading.drop_in_record(factory, "wrapper", "m:wrapper")
    assert "\n" not in str(info.value)


def test_class_permutation_moves_a_per_element_value_with_its_class():
    """BCE with reduction 'none' returns one loss per element (N, K): permuting the classes
    permutes that value too; a loss whose elements depend on the column index is caught."""
    bce = catalog.by_name()["seed002_bce"]
    impl = dataclasses.replace(bce, reductions=("none",), build=lambda cfg: lambda z, y: F.binary_cross_entropy_with_logits(
        z, F.one_hot(y, z.shape[-1]).to(z.dtype) * (1 - cfg.eps) + cfg.eps / z.shape[-1], reduction="none"))
    sample = Sample(np.array([[0.3, -1.2, 2.0, 0.7]]), np.array([2]), None, 0.1, "none", "2d", "ordinary")
    order = np.array([3, 0, 2, 1])
    properties.class_permutation(Context(impl=impl, case=Case(reduction="none", K=4, N=1)), sample, order)
    columned = dataclasses.replace(impl, build=lambda cfg: lambda z, y: F.binary_cross_entropy_with_logits(
        z * torch.arange(1, z.shape[-1] + 1, dtype=z.dtype), torch.zeros_like(z), reduction="none"))
    with pytest.raises(CheckFailed, match="class permutation"):
        properties.class_permutation(Context(impl=columned, case=Case(reduction="none", K=4, N=1)),
                                     sample, order)
