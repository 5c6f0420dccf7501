"""lsuite/judging/effective.py on gradients made by torch autograd from explicit target
distributions (written here, independently of the recovery)."""

import numpy as np
import pytest
import torch

from lsuite.judging import effective


def _grad(q: np.ndarray, logits: np.ndarray, denominator: float) -> np.ndarray:
    z = torch.tensor(logits, requires_grad=True)
    loss = -(torch.tensor(q) * torch.log_softmax(z, dim=1)).sum() / denominator
    loss.backward()
    return z.grad.numpy()


def _recover(q, logits, target, denominator, **kwargs):
    return effective.recover(logits, target, _grad(q, logits, denominator), eps=0.1, claimed="inclusive",
                             reduction="mean", denominators={"the non-ignored rows": 8.0, "every element (N·K)": 40.0},
                             **kwargs)


RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((8, 5))
TARGET = RNG.integers(0, 5, 8)
ONEHOT = np.eye(5)[TARGET]


def test_the_inclusive_distribution_over_the_claimed_denominator_is_recognised():
    found = _recover(ONEHOT * 0.9 + 0.02, LOGITS, TARGET, 8.0)
    assert found["closest"] == "inclusive" and found["denominator_label"] == "the non-ignored rows"
    assert (found["true"], found["other"], found["total"]) == pytest.approx((0.92, 0.02, 1.0))


def test_a_mean_over_every_element_is_named_as_the_denominator():
    found = _recover(ONEHOT * 0.9 + 0.02, LOGITS, TARGET, 40.0)
    assert found["closest"] == "inclusive" and found["denominator_label"] == "every element (N·K)"
    assert "not by the non-ignored rows" in found["sentence"]


def test_exclusive_mass_is_named_exclusive():
    found = _recover(ONEHOT * (0.9 - 0.025) + 0.025, LOGITS, TARGET, 8.0)
    assert found["closest"] == "exclusive" and found["other"] == pytest.approx(0.025)


def test_mass_that_fits_no_convention_is_stated_as_a_fraction_of_eps():
    found = _recover(ONEHOT * 0.9 + 0.05, LOGITS, TARGET, 8.0)  # ε/2 on every class
    assert found["closest"] is None and found["other_as"].startswith("ε/2")
    assert found["total"] == pytest.approx(0.9 + 5 * 0.05) and "no known convention fits" in found["sentence"]


def test_two_classes_cannot_tell_the_conventions_apart():
    logits = RNG.standard_normal((4, 2))
    target = np.array([0, 1, 0, 1])
    assert _recover(np.eye(2)[target] * 0.9 + 0.05, logits, target, 4.0) is None
