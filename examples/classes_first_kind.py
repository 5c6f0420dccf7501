"""An input kind of our own, as a template to copy: a loss called on its scores classes
first, (K, N), as a column-major kernel lays them out, with class-index targets (N,). It is
one module: the record (examples/classes_first_cross_entropy.py) names it in `kind=`, and
every generic check of suites/test_every_kind.py (reference, invariants, arguments), the
benchmarks and the report's matrix run on it with no other edit (selftests/test_new_kind.py).

What a kind declares (lsuite/kinds/kind.py): the leaves it is differentiated for, with the
axes the invariants permute and the leaf a per-row shift moves; how the record is called;
its seeded inputs; the reference's outputs by name; the budget's anchor (what a careful
kernel attains) and PyTorch's yardstick. Here every one of them is the logits kind's,
transposed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import reference
from lsuite.inputs.cases import Inputs, make_inputs
from lsuite.kinds import LOGITS, Kind, Leaf
from lsuite.running.runner import CallSpec


@dataclass(frozen=True)
class ClassesFirstInputs:
    """The logits kind's inputs with the scores stored (K, N)."""

    scores: np.ndarray
    target: np.ndarray
    weight: np.ndarray | None
    cotangent: np.ndarray | None
    ignore_index: int | None
    spec: reference.Spec
    upstream: float | None = None

    @property
    def logits(self) -> np.ndarray:  # (N, K): what the reference and the budgets read
        return self.scores.T

    @property
    def leaves(self) -> dict:
        return {"scores": self.scores}

    def as_logits(self) -> Inputs:
        return Inputs(self.logits, self.target, self.weight, self.cotangent, self.ignore_index,
                      self.spec, self.upstream)


def _inputs(impl, case, seed: int = 0) -> ClassesFirstInputs:
    base = make_inputs(impl, case, seed)
    return ClassesFirstInputs(np.ascontiguousarray(base.logits.T), base.target, base.weight,
                              base.cotangent, base.ignore_index, base.spec, base.upstream)


def _transposed(outputs: dict) -> dict:
    return {"value": outputs["value"], "scores": np.asarray(outputs["logits"]).T}


def _why_not(impl, case) -> str | None:
    return None if case.layout == "2d" and case.targets == "index" else "(K, N) scores and class indices only"


def _expected(inputs: ClassesFirstInputs) -> dict:
    return _transposed(LOGITS.expected(inputs.as_logits()))


def _attainable(inputs: ClassesFirstInputs, dtype: str, exact: dict) -> dict:
    return _transposed(LOGITS.attainable(inputs.as_logits(), dtype, dict(exact, logits=exact["scores"].T)))


def _pytorch(inputs: ClassesFirstInputs, dtype: str) -> dict:
    return _transposed(LOGITS.pytorch(inputs.as_logits(), dtype))


# Module-level functions only (no lambdas): a record loaded in its own worker process
# describes itself to the judge by pickling, and the kind travels with it by reference.
CLASSES_FIRST = Kind(
    name="classes_first", serves=("classes_first",),
    leaves=(Leaf("scores", class_axis=0, row_axis=1, shift="row"),),
    call=CallSpec(leaves=("scores",), args=("scores", "target"), scores=None),
    make_inputs=_inputs, expected=_expected, attainable=_attainable, pytorch=_pytorch,
    why_not=_why_not, describe="scores classes first (K, N)")
