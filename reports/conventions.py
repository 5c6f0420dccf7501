"""The conventions worked example: each implementation's target distribution q for K=5,
eps=0.1, target class 1, and which implementations' q coincide.

q comes from the project's `reference` package when it imports and answers
(`reference.target_distribution(reference.Spec(...), K, y)`); otherwise from the small
formula table below (CONVENTIONS.md §1), and the report says which source each row used.
`reference` is imported lazily, and a broken or absent one only switches to the table.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

import numpy as np

K, EPS, TARGET = 5, 0.1, 1  # the worked example of CONVENTIONS.md §1
PAD_INDEX = 0  # padding column used for padding_excluded in the example
SAME_Q_ATOL = 1e-12  # two q's within this (max abs difference) count as the same distribution


def _local(convention: str, k: int, y: int, eps: float) -> np.ndarray | None:
    """CONVENTIONS.md §1 as a table; None for a convention it does not know."""
    q = np.empty(k)
    if convention in ("inclusive", "binary_classwise"):
        q.fill(eps / k)
        q[y] = 1 - eps + eps / k
    elif convention == "exclusive":
        q.fill(eps / (k - 1))
        q[y] = 1 - eps
    elif convention == "padding_excluded":
        q.fill(eps / (k - 2))
        q[PAD_INDEX] = 0.0
        q[y] = 1 - eps
    elif convention == "binary":
        q.fill(eps / 2)
        q[y] = 1 - eps / 2
    else:
        return None
    return q


def _reference():
    """The reference module if it imports and has the API; else None (never raises)."""
    try:
        module = importlib.import_module("reference")
    except Exception:  # a half-written or absent reference must not stop the report
        return None
    if callable(getattr(module, "Spec", None)) and callable(getattr(module, "target_distribution", None)):
        return module
    return None


@dataclass
class ExampleRow:
    impl: str
    convention: str
    form: str
    q: list[float] | None
    entropy: float | None  # H(q) with 0 log 0 = 0: the KL-vs-CE value offset per row
    source: str  # "reference" | "local table" | "unknown convention"
    note: str


def _from_reference(module, convention: str, form: str) -> np.ndarray:
    pad = PAD_INDEX if convention == "padding_excluded" else None
    spec = module.Spec(convention, form, EPS, "sum", ignore_index=None, pad_index=pad,
                       targets="index")
    q = np.asarray(module.target_distribution(spec, K, TARGET), dtype=np.float64).reshape(-1)
    if q.shape != (K,) or not np.all(np.isfinite(q)):
        raise ValueError(f"reference returned shape {q.shape}")
    return q


def worked_example(impls: list[dict]) -> tuple[list[ExampleRow], bool]:
    """One row per declared implementation; the flag says whether `reference` was used."""
    module = _reference()
    rows = []
    for record in impls:
        name = str(record.get("name") or "(unnamed)")
        convention, form = str(record.get("convention") or ""), str(record.get("form") or "")
        q, source, note = None, "unknown convention", ""
        if module is not None:
            try:
                q, source = _from_reference(module, convention, form), "reference"
            except Exception as exc:  # fall back per row, and say why
                note = f"reference: {type(exc).__name__}: {exc}"[:200]
        if q is None:
            q = _local(convention, K, TARGET, EPS)
            source = "local table" if q is not None else source
        entropy = None
        if q is not None:
            entropy = float(-sum(v * math.log(v) for v in q if v > 0))
        rows.append(ExampleRow(name, convention, form, None if q is None else [float(v) for v in q],
                               entropy, source, note))
    return rows, module is not None


def coinciding(rows: list[ExampleRow]) -> list[list[ExampleRow]]:
    """Groups of two or more implementations whose q is the same on the worked example."""
    groups: list[list[ExampleRow]] = []
    for row in rows:
        if row.q is None:
            continue
        for group in groups:
            if np.max(np.abs(np.subtract(group[0].q, row.q))) <= SAME_Q_ATOL:
                group.append(row)
                break
        else:
            groups.append([row])
    return [g for g in groups if len(g) >= 2]
