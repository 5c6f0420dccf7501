"""Bad arguments: ValueError with one line that names what to fix."""

from __future__ import annotations

import numpy as np
import pytest

import reference
from reference import Spec

X = np.zeros((3, 4))
Y = np.array([0, 1, 3])
OK = dict(convention="inclusive", form="ce", eps=0.1, reduction="mean")


def make(**changes):
    return Spec(**{**OK, **changes})


@pytest.mark.parametrize("changes,match", [
    (dict(convention="uniform"), "convention='uniform' is unknown"),
    (dict(form="nll"), "form='nll' is unknown"),
    (dict(form="bce"), "form='bce' does not go with convention 'inclusive'"),
    (dict(convention="binary"), "form='ce' does not go with convention 'binary'"),
    (dict(eps=-0.1), r"outside \[0, 1\]"),
    (dict(eps=1.5), r"outside \[0, 1\]"),
    (dict(eps=float("nan")), r"outside \[0, 1\]"),
    (dict(eps="0.1"), "must be a real number"),
    (dict(reduction="avg"), "reduction='avg' is unknown"),
    (dict(convention="binary", form="bce"), "use 'element_mean'"),
    (dict(targets="onehot"), "targets='onehot' is unknown"),
    (dict(ignore_index=1.5), "ignore_index=1.5 must be an integer"),
    (dict(pad_index=0), "only applies to convention 'padding_excluded'"),
    (dict(convention="padding_excluded", pad_index=-1), "must be a class index >= 0"),
    (dict(convention="exclusive", targets="probs"), "not defined for convention 'exclusive'"),
    (dict(targets="probs", ignore_index=0), "PyTorch raises too"),
])
def test_bad_spec_raises_a_one_line_value_error(changes, match):
    with pytest.raises(ValueError, match=match) as info:
        make(**changes)
    assert "\n" not in str(info.value)


def test_spec_normalises_numbers():
    s = make(eps=1, ignore_index=np.int64(-100))
    assert s.eps == 1.0 and type(s.eps) is float and type(s.ignore_index) is int


@pytest.mark.parametrize("call,match", [
    (lambda: reference.loss(X, np.array([0, 1, 4]), make()), r"target class 4 is outside \[0, 4\)"),
    (lambda: reference.loss(X, np.array([0, -1, 2]), make()), "set Spec.ignore_index"),
    (lambda: reference.loss(X, np.array([0, -1, 2]), make(ignore_index=-100)), "or the ignore_index -100"),
    (lambda: reference.loss(X, np.array([0, 1]), make()), r"target has shape \(2,\)"),
    (lambda: reference.loss(X, Y.astype(float), make()), "targets='probs'"),
    (lambda: reference.loss(X, Y, make(targets="probs")), "probability target has shape"),
    (lambda: reference.loss(X, Y, make(), weight=np.ones(3)), r"shape \(4,\), one weight per class"),
    (lambda: reference.loss(np.float64(1.0), 0, make()), "logits are 0-d"),
    (lambda: reference.loss(np.zeros((2, 1)), np.zeros(2, int), make(convention="exclusive")),
     "K=1 class"),
    (lambda: reference.loss(np.zeros((2, 2)), np.zeros(2, int), make(convention="padding_excluded", pad_index=1)),
     "no class for the smoothing mass"),
    (lambda: reference.loss(X, Y, make(convention="padding_excluded", pad_index=4)),
     r"pad_index=4 is outside \[0, 4\)"),
    (lambda: reference.loss(X, Y, make(convention="padding_excluded", pad_index=3)),
     "is the padding column"),
    (lambda: reference.loss_and_grad(X, Y, make(), cotangent=np.ones(3)), "pass a scalar cotangent"),
    (lambda: reference.loss_and_grad(X, Y, make(reduction="none"), cotangent=np.ones(4)),
     r"reduction 'none' gives shape \(3,\)"),
    (lambda: reference.loss_and_grad(X, Y, make(), grad_out=np.zeros((4, 3))), "grad_out must be"),
    (lambda: reference.loss(X, Y, make(), chunk_elems=0), "chunk_elems=0"),
    (lambda: list(reference.iter_row_chunks(np.zeros((2, 3, 4)), np.zeros((2, 4), int), make())),
     "iter_row_chunks takes 2-D"),
    (lambda: reference.loss(X, Y, "inclusive"), "pass a reference.Spec"),
    (lambda: reference.target_distribution(make(), 4, 7), r"outside \[0, 4\)"),
])
def test_bad_call_raises_a_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_exclusive_with_one_class_and_no_smoothing_is_allowed():
    got = reference.loss_and_grad(np.zeros((2, 1)), np.zeros(2, int), make(convention="exclusive", eps=0.0))
    assert got.value == 0.0 and not got.grad.any()


def test_iter_row_chunks_validates_before_the_first_chunk():
    with pytest.raises(ValueError):
        reference.iter_row_chunks(X, np.array([0, 1, 9]), make())  # no next() needed
