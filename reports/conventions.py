"""The conventions worked example: each implementation's target distribution q on one
small example (K=5, eps=0.1, target class 1), and which implementations' q coincide.

q is read from results.json: the run records it per implementation as
`environment.impls[i].example_target` = {"K", "eps", "target", "pad_index", "q", "error"},
computed by the reference (lsuite/pytest_plugin/results.py). Nothing is recomputed here: no formula
table, no import of `reference`. A file written before q was recorded, or a record
whose q is null (the reference failed; "error" says why), shows the row as not recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The example the suite records (lsuite/pytest_plugin/results.py EXAMPLE); shown when no record says.
DEFAULT_EXAMPLE = {"K": 5, "eps": 0.1, "target": 1, "pad_index": 0}
MAX_K = 64  # a recorded K beyond this is a damaged file: the table would not fit
SAME_Q_ATOL = 1e-12  # two q's within this (max abs difference) count as the same distribution


@dataclass
class ExampleRow:
    impl: str
    convention: str
    form: str
    q: list[float] | None
    entropy: float | None  # H(q) with 0 log 0 = 0: the KL-vs-CE value offset per row
    source: str  # "recorded" | "not recorded"
    note: str  # why not, when the run said


def _q(record: dict, k: int) -> tuple[list[float] | None, str]:
    """(q, note) from one implementation's example_target; q None when unusable."""
    example = record.get("example_target")
    if not isinstance(example, dict):
        return None, "written before the worked example was recorded"
    q = example.get("q")
    if q is None:
        return None, str(example.get("error") or "no q recorded")[:300]
    if (not isinstance(q, list) or len(q) != k
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in q)):
        return None, f"recorded q is not {k} finite numbers"
    return [float(v) for v in q], ""


def example_of(impls: list[dict]) -> dict:
    """The example's parameters as the first record states them, else DEFAULT_EXAMPLE."""
    for record in impls:
        example = record.get("example_target")
        if isinstance(example, dict):
            params = {key: example.get(key) for key in DEFAULT_EXAMPLE}
            k, target = params["K"], params["target"]
            sane = (all(isinstance(v, int | float) and not isinstance(v, bool) for v in params.values())
                    and isinstance(k, int) and 1 <= k <= MAX_K and isinstance(target, int) and 0 <= target < k)
            if sane:
                return params
    return dict(DEFAULT_EXAMPLE)


def worked_example(impls: list[dict]) -> tuple[list[ExampleRow], dict]:
    """One row per declared implementation, and the example's parameters."""
    example = example_of(impls)
    rows = []
    for record in impls:
        name = str(record.get("name") or "(unnamed)")
        convention, form = str(record.get("convention") or ""), str(record.get("form") or "")
        q, note = _q(record, int(example["K"]))
        entropy = None if q is None else float(-sum(v * math.log(v) for v in q if v > 0))
        rows.append(ExampleRow(name, convention, form, q, entropy,
                               "recorded" if q is not None else "not recorded", note))
    return rows, example


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
