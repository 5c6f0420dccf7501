"""Merge results of several runs of one commit (a CPU job and a GPU job, or shards) into
one results dict, by these rules (docs/report.md, "Merging runs"):

- Inputs must agree on `schema` and `environment.suite_commit`; otherwise `merge` refuses
  unless forced, and a forced merge records what differed in `environment.merge`.
- Checks are matched by nodeid. A nodeid in several inputs keeps the record with the
  worst outcome, in the order WORST_LAST (an unknown outcome counts as error; between
  equal outcomes the earlier input wins), and gains `merged_outcomes`: every input's
  outcome for it, as `{"input": index into environment.merged_from, "outcome": ...}`.
  Skipped is the mildest: a check skipped on the CPU job and run on the GPU job keeps
  the run. Checks without a nodeid cannot be matched and are all kept.
- Benchmarks are concatenated; entries with the same key (lsresults.benchdiff.KEY: impl,
  device, dtype, pass, n, k) keep the later input's entry, at the place of the first,
  which is also what benchdiff's matching would have kept.
- `complete` is true only if every input is complete; `verdicts` are recomputed from the
  merged checks.
- `environment` has the first input's fields (a field the first lacks comes from the
  first input that has it), the union of `impls` by name (first wins), `merged_from`
  (path, suite commit, started, CUDA availability, workers, complete, counts of each
  input) and `merge` (forced, differences, overlapping checks, replaced benchmarks).
- `benchmark_gate` is the first input's that has one, with every input's gate findings.
- The merged file is schema 2 (lsresults.load.SCHEMA): a check from a schema-1 input gains
  `input`, `world` and `gradients`, derived from its metrics (lsresults/inputs.py).
"""

from __future__ import annotations

import copy
from collections import Counter

from lsresults import benchdiff
from lsresults.inputs import check_fields, input_kinds
from lsresults.load import SCHEMA, ResultsError
from lsresults.verdicts import verdict_of

from . import causes
from .analysis import conformance_checks, impl_of, outcome_of, text

# outcomes from mildest to worst: what "the worst outcome" of a nodeid means
WORST_LAST = ("skipped", "passed", "xfailed", "divergence", "suite_error", "xpassed", "failed", "error")
RANK = {outcome: i for i, outcome in enumerate(WORST_LAST)}
IDENTITY = (("schema", None), ("suite_commit", "environment"))  # (field, the object holding it)


def _env(payload: dict) -> dict:
    return payload.get("environment") or {}


def _identity(payload: dict, field: str, holder: str | None):
    return (payload if holder is None else _env(payload)).get(field)


def differences(inputs: list[tuple[str, dict]]) -> list[dict]:
    """[{"field", "values"}] for each identity field on which the inputs disagree."""
    out = []
    for field, holder in IDENTITY:
        values = [_identity(payload, field, holder) for _, payload in inputs]
        if len({repr(v) for v in values}) > 1:
            out.append({"field": field if holder is None else f"{holder}.{field}", "values": values})
    return out


def _source(path: str, payload: dict) -> dict:
    env = _env(payload)
    cuda = env.get("cuda")
    return {"path": path, "suite_commit": env.get("suite_commit"), "started": env.get("started"),
            "cuda_available": cuda.get("available") if isinstance(cuda, dict) else None,
            "workers": env.get("workers"), "complete": payload.get("complete") is True,
            "checks": len(payload.get("checks") or ()), "benchmarks": len(payload.get("benchmarks") or ())}


def _checks(inputs: list[tuple[str, dict]]) -> tuple[list[dict], int]:
    """Checks merged by nodeid (the worst outcome kept), and how many nodeids overlapped."""
    merged: dict[str, dict] = {}
    seen: dict[str, list[dict]] = {}
    unmatched = []
    for index, (_, payload) in enumerate(inputs):
        for check in payload.get("checks") or ():
            nodeid = check.get("nodeid")
            if not isinstance(nodeid, str) or not nodeid:
                unmatched.append(check)
                continue
            seen.setdefault(nodeid, []).append({"input": index, "outcome": check.get("outcome")})
            kept = merged.get(nodeid)
            if kept is None or RANK[outcome_of(check)] > RANK[outcome_of(kept)]:
                merged[nodeid] = check
    out, overlapping = [], 0
    for nodeid, check in merged.items():
        if len(seen[nodeid]) > 1:
            check = {**check, "merged_outcomes": seen[nodeid]}
            overlapping += 1
        out.append(check)
    return out + unmatched, overlapping


def _benchmarks(inputs: list[tuple[str, dict]]) -> tuple[list[dict], int]:
    by_key: dict[tuple, dict] = {}
    replaced = 0
    for _, payload in inputs:
        for entry in payload.get("benchmarks") or ():
            key = benchdiff.key_of(entry)
            replaced += key in by_key
            by_key[key] = entry
    return list(by_key.values()), replaced


def _gate(inputs: list[tuple[str, dict]]) -> dict | None:
    gates = [p.get(benchdiff.GATE) for _, p in inputs if isinstance(p.get(benchdiff.GATE), dict)]
    if not gates:
        return None
    found = [g.get("findings") for g in gates if isinstance(g.get("findings"), list)]
    return {**gates[0], "findings": [f for group in found for f in group] if found else None}


def _environment(inputs: list[tuple[str, dict]]) -> dict:
    env: dict = {}
    for _, payload in inputs:
        for key, value in _env(payload).items():
            env.setdefault(key, value)
    impls: dict[str, dict] = {}
    for _, payload in inputs:
        for record in _env(payload).get("impls") or ():
            impls.setdefault(text(record.get("name")), record)
    if impls:
        env["impls"] = list(impls.values())
    env["merged_from"] = [_source(path, payload) for path, payload in inputs]
    return env


def merge(inputs: list[tuple[str, dict]], *, force: bool = False) -> dict:
    """One results dict from validated (path, results) pairs; ResultsError (one line) when
    they differ in schema or suite commit and `force` is false."""
    if len(inputs) < 2:
        raise ResultsError("merge needs at least two results files")
    differ = differences(inputs)
    if differ and not force:
        first = differ[0]
        shown = ", ".join(f"{path}: {value!r:.60}" for (path, _), value in zip(inputs, first["values"], strict=True))
        raise ResultsError(f"refusing to merge runs of different {first['field']} ({shown}); "
                           "pass --force to merge them anyway (the merged file records the difference)")
    inputs = copy.deepcopy(inputs)
    checks, overlapping = _checks(inputs)
    benchmarks, replaced = _benchmarks(inputs)
    env = _environment(inputs)
    kinds = input_kinds(env)  # a schema-1 input's checks get the schema-2 fields
    checks = [c if all(k in c for k in ("input", "world", "gradients")) else dict(c, **check_fields(c, kinds))
              for c in checks]
    env["merge"] = {"forced": bool(differ), "differences": differ, "overlapping_checks": overlapping,
                    "outcome_rule": "worst of " + " < ".join(WORST_LAST), "replaced_benchmarks": replaced}
    merged = {"schema": SCHEMA, "complete": all(p.get("complete") is True for _, p in inputs),
              "environment": env, "verdicts": {}, "checks": checks, "benchmarks": benchmarks,
              benchdiff.GATE: _gate(inputs)}
    counts: dict[str, Counter] = {}
    for check in conformance_checks(merged):
        counts.setdefault(impl_of(check), Counter())[outcome_of(check)] += 1
    merged["verdicts"] = {impl: verdict_of(c) for impl, c in counts.items()}
    merged["findings"] = causes.findings(checks, env)  # regrouped over every input's checks
    return merged


__all__ = ["RANK", "WORST_LAST", "differences", "merge"]
