"""The real-world claims of a record (lsuite/record/claims.py), made of fields only: a classes-last,
float32-output, eps < 1 loss with its own keyword names passes through the one runner and the
reference check; the same loss without the claims fails where it should."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from lsuite import Impl, construct
from lsuite.catalogs import peers, triton_here
from lsuite.checks.reference import check_against_reference
from lsuite.inputs.cases import Case, default_case, supports
from lsuite.running.runner import CheckFailed, Context


class LastDimSmoothedCE:
    """Classes on the last dim, keyword `smoothing`, a float32 loss, asserts smoothing < 1."""

    def __init__(self, smoothing: float, pad_id: int = -100):
        assert smoothing < 1.0
        self.smoothing, self.pad_id = smoothing, pad_id

    def __call__(self, logits, target):
        logp = F.log_softmax(logits.float(), dim=-1)
        kept = target != self.pad_id
        safe = torch.where(kept, target, 0)
        nll = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        row = (1 - self.smoothing) * nll - self.smoothing * logp.mean(-1)
        row = torch.where(kept, row, torch.zeros_like(row))
        return row.sum() / kept.sum()


RECORD = Impl(
    name="last_dim", build=construct(LastDimSmoothedCE, eps="smoothing", reduction=None,
                                     weight=None, ignore_index="pad_id"),
    convention="inclusive", form="ce", reductions=("mean",), weights=False,
    class_dim="last", output_dtype="float32", computes_in="float32",
    eps_max=1.0, eps_max_inclusive=False)


@pytest.mark.parametrize("case", [
    Case(layout="nd"), Case(layout="unbatched"), Case(ignore="in_range"),
    Case(dtype="bfloat16"), Case(dtype="float64", layout="nd"), Case(eps=0.9)])
def test_a_record_of_fields_only_passes_where_its_claims_hold(case):
    assert supports(RECORD, case) is None
    check_against_reference(Context(impl=RECORD, case=case))


def test_a_record_without_float64_gets_a_base_case_it_claims():
    """A record refusing float64 (TransformerEngine's) gets every fixed-dtype check on its
    first dtype, not an empty set of cases."""
    no_float64 = dataclasses.replace(RECORD, dtypes=("float32", "bfloat16"))
    base = default_case(no_float64)
    assert base.dtype == "float32" and supports(no_float64, base) is None
    assert default_case(RECORD).dtype == "float64"


def test_eps_one_is_not_claimed_when_eps_max_is_exclusive():
    assert supports(RECORD, Case(eps=1.0)) == "eps=1.0"


@pytest.mark.parametrize("change, case, message", [
    (dict(class_dim="1"), Case(layout="nd"), None),
    (dict(output_dtype="input"), Case(dtype="bfloat16"), "out.dtype=torch.float32"),
    (dict(computes_in=None), Case(dtype="float64"), "exceeds the budget"),
])
def test_without_its_claims_the_same_loss_fails(change, case, message):
    with pytest.raises(CheckFailed, match=message):
        check_against_reference(Context(impl=dataclasses.replace(RECORD, **change), case=case))


def test_an_empty_mean_claimed_zero_must_be_zero():
    zero = dataclasses.replace(RECORD, empty_mean="zero")
    with pytest.raises(CheckFailed, match="NaN"):  # the loss above gives 0/0 = NaN
        check_against_reference(Context(impl=zero, case=Case(ignore="all")))
    check_against_reference(Context(impl=RECORD, case=Case(ignore="all", eps=0.1)))


def test_a_record_whose_library_is_absent_skips_with_the_install_command():
    absent = dataclasses.replace(RECORD, requires=("no_such_module_xyz",), install=peers.INSTALL)
    reason = triton_here.skip_reason(absent, Case(), cuda_available=False)
    assert "no_such_module_xyz" in reason and "requirements-peers.txt" in reason


def test_interpreted_triton_records_skip_cases_over_the_cap(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    kernel = dataclasses.replace(RECORD, triton=True)
    assert triton_here.skip_reason(kernel, Case(K=32000, N=8), cuda_available=False) is None
    assert "interpreted cap" in triton_here.skip_reason(kernel, Case(K=65537, N=4), cuda_available=False)
    monkeypatch.delenv("TRITON_INTERPRET")
    assert "TRITON_INTERPRET" in triton_here.skip_reason(kernel, Case(), cuda_available=True)


def test_interpreted_triton_records_get_a_longer_time_limit(monkeypatch):
    kernel = dataclasses.replace(RECORD, triton=True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_here.as_run_here(kernel).time_factor == triton_here.INTERPRETED_TIME_FACTOR > 1
    assert triton_here.as_run_here(dataclasses.replace(kernel, time_factor=5.0)).time_factor == 5.0
    monkeypatch.delenv("TRITON_INTERPRET")
    assert triton_here.as_run_here(kernel).time_factor == 1.0  # compiled: the plain limit


def test_interpreted_triton_records_drop_the_fields_and_dtypes_the_interpreter_cannot_run(monkeypatch):
    kernel = dataclasses.replace(RECORD, triton=True, weights=True,
                                 interpreter_cannot=("weights", "bfloat16", "float16"))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    here = triton_here.as_run_here(kernel)
    assert here.dtypes == ("float64", "float32") and here.weights is False
    assert "bfloat16" in here.description and "natively on CUDA" in here.description
    monkeypatch.delenv("TRITON_INTERPRET")
    assert triton_here.as_run_here(kernel) is kernel  # natively: every dtype
    with pytest.raises(ValueError, match="interpreter_cannot"):
        dataclasses.replace(RECORD, interpreter_cannot=("float8",))
