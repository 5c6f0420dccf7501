"""The strategies draw what they promise, reject bad arguments, and the invariants built on
them catch broken drop-ins by name while correct ones pass every invariant (pytester runs)."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsuite.catalogs import catalog
from lsuite.inputs import strategies as ls

ROOT = Path(__file__).resolve().parents[1]
DROPINS = ROOT / "selftests" / "impls" / "dropins.py"
EXAMPLE = ROOT / "examples" / "my_label_smoothing.py"


@given(data=st.data())
@settings(max_examples=30)
def test_confident_logits_put_the_promised_probability_on_the_target(data):
    target = data.draw(ls.class_targets(num_classes=5, shape=(4,)))
    z = data.draw(ls.logits(target=target, num_classes=5, kind="confident"))
    p = np.exp(z - np.logaddexp.reduce(z, axis=1, keepdims=True))[np.arange(4), target]
    promised = 1 - np.array(ls.CONFIDENT_MISSES)
    assert np.all(np.min(np.abs(p[:, None] - promised), axis=1) < 1e-9)


@given(data=st.data())
@settings(max_examples=30)
def test_masked_logits_never_mask_a_target_or_an_ignored_row(data):
    target = data.draw(ls.class_targets(num_classes=6, shape=(5,), ignore_index=-100))
    z = data.draw(ls.logits(target=target, num_classes=6, kind="masked", ignore_index=-100))
    kept = target != -100
    assert np.isfinite(z[np.arange(5)[kept], target[kept]]).all()
    assert np.isfinite(z[~kept]).all()


@given(sample=ls.samples(impl=catalog.by_name()["seed000_ce"]))
@settings(max_examples=30)
def test_samples_are_copy_pasteable(sample):
    import torch  # noqa: F401  (the literal needs it)
    namespace = {}
    exec(sample.literal(call="pass"), namespace)
    assert np.array_equal(namespace["logits"].detach().numpy(), sample.logits)
    assert np.array_equal(namespace["target"].numpy(), sample.target)


@pytest.mark.parametrize("call", [
    lambda: ls.num_classes(min_value=1), lambda: ls.smoothing(max_value=1.5),
    lambda: ls.shapes(num_classes=3, layout="3d"), lambda: ls.class_weights(num_classes=3, max_value=0),
    lambda: ls.logits(target=np.zeros(2, int), num_classes=3, kind="loud"),
])
def test_strategies_reject_bad_arguments(call):
    with pytest.raises(ValueError):
        call()


def run_invariants(pytester, spec):
    out_dir = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        str(ROOT / "suites" / "test_invariants.py"), f"--rootdir={ROOT}", "-c",
        str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider", f"--ls-report-dir={out_dir}",
        "--hypothesis-profile=ci", "--ls-impl", spec)
    return result, json.loads((out_dir / "results.json").read_text())


@pytest.mark.parametrize("spec", [f"{EXAMPLE}:LabelSmoothedCE", f"{DROPINS}:TargetDistributionCE"],
                         ids=["example", "target_distribution"])
def test_correct_drop_ins_pass_every_invariant(pytester, spec):
    result, payload = run_invariants(pytester, spec)
    assert result.ret == 0, result.stdout.str()[-3000:]
    # NaN where the mathematics says +inf (a mean over zero total target weight): a divergence
    edge = [c for c in payload["checks"] if c["check"].endswith("at_a_zero_total_target_weight")]
    assert {c["outcome"] for c in payload["checks"] if c not in edge} <= {"passed", "skipped"}
    assert {c["outcome"] for c in edge} <= {"passed", "skipped", "divergence"}
    assert sum(c["outcome"] == "passed" for c in payload["checks"]) >= 30


@pytest.mark.parametrize("broken, check", [
    ("NaiveLogSoftmax", "shifting_a_rows_logits_leaves_value_and_gradient_unchanged"),
    ("HardCodedPadZero", "permuting_classes_permutes_the_gradient_and_keeps_the_value"),
    ("LogitsAsLogProbs", "cross_entropy_is_at_least_the_target_entropy_and_kl_at_least_zero"),
])
def test_broken_drop_in_is_caught_by_the_named_invariant(pytester, broken, check):
    result, payload = run_invariants(pytester, f"{DROPINS}:{broken}")
    failed = [c for c in payload["checks"] if c["check"] == check and c["outcome"] == "failed"]
    assert result.ret == 1 and failed, result.stdout.str()[-2000:]
    assert "torch.tensor([" in failed[0]["message"] and "repro: python -m pytest" in failed[0]["message"]
