"""What an input kind declares (one module per kind in this package): everything that
differs between a loss called on logits, on hidden states and a classifier, or on one
vocab-parallel shard of the classes per rank, and nothing else.

Written once for every kind, elsewhere: the runner (lsuite/running/runner.py, which
interprets the kind's `CallSpec`), the reference check (lsuite/checks/reference.py), the
invariants (lsuite/checks/invariants.py, from the axes each `Leaf` declares here), the
argument checks and the benchmarks' inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lsuite.inputs.cases import Case, round_to
from lsuite.running.runner import CallSpec, Feed

# The Case fields only some kinds vary, with their defaults: a kind that does not list one
# in its `axes` takes only the default.
KIND_AXES = {"H": Case.H, "bias": Case.bias, "world": Case.world}


@dataclass(frozen=True)
class Leaf:
    """An array the implementation is differentiated with respect to, and its axes: the
    invariants permute classes along `class_axis` (of a 1-D array: axis 0), rows along
    `row_axis`, and shift it ("row": a constant added to every class of a row; "all": one
    constant added to every entry) where the loss cannot change."""

    name: str
    class_axis: int | None = None
    row_axis: int | None = None
    shift: str | None = None

    def classes_at(self, array: np.ndarray) -> int | None:
        if self.class_axis is None:
            return None
        return 0 if np.ndim(array) == 1 else self.class_axis


@dataclass(frozen=True)
class Kind:
    """One input kind. `make_inputs(impl, case, seed)` returns seeded inputs with `leaves`
    (name -> array), `target`, `weight`, `cotangent`, `upstream`, `spec` and the whole
    `logits`; `expected(inputs)`, `attainable(inputs, dtype, exact)` and
    `pytorch(inputs, dtype)` return {"value": ..., <leaf name>: gradient} (the reference,
    what a careful kernel attains elementwise, PyTorch's own outputs in dtype)."""

    name: str
    serves: tuple[str, ...]  # the records' `input` values judged as this kind
    leaves: tuple[Leaf, ...]
    call: CallSpec
    make_inputs: Callable[..., Any]
    expected: Callable[[Any], dict]
    attainable: Callable[[Any, str, dict], dict]
    pytorch: Callable[[Any, str], dict]
    axes: tuple[str, ...] = ()  # its own Case fields (KIND_AXES)
    why_not: Callable[[Any, Case], str | None] | None = None  # support beyond the axes (None: all)
    ranks: bool = False  # process topology: one worker (False), or case.world ranks of a group
    # the generic checks' extra axes for this kind (lsuite/pytest_plugin/plugin.py), e.g. a bias
    matrix: tuple[tuple[str, tuple], ...] = ()
    describe: str = ""  # in words, for messages and docs

    @property
    def gradients(self) -> tuple[str, ...]:
        return tuple(leaf.name for leaf in self.leaves)

    def leaf(self, name: str) -> Leaf:
        return next(leaf for leaf in self.leaves if leaf.name == name)

    def feed(self, inputs, **changes) -> Feed:
        """The runner's Feed for these inputs (changes: Feed fields)."""
        base = Feed({leaf.name: inputs.leaves.get(leaf.name) for leaf in self.leaves},
                    inputs.target, inputs.weight, inputs.cotangent, call=self.call)
        return dataclasses.replace(base, **changes)

    # ----------------------------------------------------------- the invariants' transforms
    def shifted(self, inputs, shifts: np.ndarray, dtype: str):
        """The inputs with every shiftable leaf moved (a constant per row, or one constant for
        an "all" leaf: the first of `shifts`); None when no leaf is given to shift."""
        changes = {}
        for leaf in self.leaves:
            array = inputs.leaves.get(leaf.name)
            if leaf.shift is None or array is None:
                continue
            if leaf.shift == "all":
                moved = array + float(np.reshape(shifts, -1)[0])
            else:
                moved = array + np.expand_dims(np.reshape(shifts, np.shape(inputs.target)),
                                               leaf.classes_at(array))
            changes[leaf.name] = round_to(moved, dtype)
        return dataclasses.replace(inputs, **changes) if changes else None

    def classes_permuted(self, inputs, order: np.ndarray, target: np.ndarray):
        """Class order[j] moved to j in every leaf with classes, the weights and (relabelled)
        targets with them."""
        changes = {leaf.name: np.take(inputs.leaves[leaf.name], order, axis=leaf.classes_at(
            inputs.leaves[leaf.name])) for leaf in self.leaves
            if leaf.class_axis is not None and inputs.leaves.get(leaf.name) is not None}
        weight = None if inputs.weight is None else inputs.weight[order]
        return dataclasses.replace(inputs, **changes, target=target, weight=weight)

    def rows_permuted(self, inputs, order: np.ndarray):
        """Rows permuted in every leaf with rows, the targets and the cotangent with them."""
        changes = {leaf.name: np.take(inputs.leaves[leaf.name], order, axis=leaf.row_axis)
                   for leaf in self.leaves
                   if leaf.row_axis is not None and inputs.leaves.get(leaf.name) is not None}
        cotangent = None if inputs.cotangent is None else inputs.cotangent[order]
        return dataclasses.replace(inputs, **changes, target=inputs.target[order], cotangent=cotangent)

    def outputs_classes_permuted(self, outputs: dict, order: np.ndarray, scores_shape) -> dict:
        """What a class permutation makes of the outputs: gradients of leaves with classes
        permuted like them; a value with one entry per class (a BCE 'none') too."""
        out = dict(outputs)
        value = np.asarray(outputs["value"])
        if scores_shape is not None and value.shape == tuple(scores_shape):
            out["value"] = np.take(value, order, axis=0 if value.ndim == 1 else 1)
        for leaf in self.leaves:
            if leaf.class_axis is not None and grad_name(leaf.name) in out:
                g = out[grad_name(leaf.name)]
                out[grad_name(leaf.name)] = np.take(g, order, axis=leaf.classes_at(g))
        return out

    def outputs_rows_permuted(self, outputs: dict, order: np.ndarray, reduction: str) -> dict:
        out = dict(outputs)
        if reduction == "none":
            out["value"] = np.asarray(outputs["value"])[order]
        for leaf in self.leaves:
            if leaf.row_axis is not None and grad_name(leaf.name) in out:
                out[grad_name(leaf.name)] = np.take(out[grad_name(leaf.name)], order, axis=leaf.row_axis)
        return out


def grad_name(leaf: str) -> str:
    """An output's name in checks and metrics: "grad" for the logits, "grad_<leaf>" else."""
    return "grad" if leaf == "logits" else f"grad_{leaf}"
