"""One conformance matrix per input kind present in a results file (schema 2): the logits
records', the hidden-states records' (a column for the bias and per judged gradient) and
the vocab-parallel records' (a column per world size and per rank's shard, and the world
sizes each record ran at per device). The cells are reports/analysis.py's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from lsresults import inputs

from .analysis import (
    BAD,
    DEVICE_ORDER,
    MEASURED,
    Cell,
    Feature,
    ImplView,
    active,
    conformance_checks,
    impl_of,
    matrix,
    ordered,
    outcome_of,
    params_of,
    reasons,
    text,
)


def input_of_view(view: ImplView, results: dict) -> str:
    """The record's input kind; for an undeclared implementation, what its checks say."""
    kind = view.record.get("input")
    if isinstance(kind, str) and kind:
        return kind
    for check in conformance_checks(results):
        if impl_of(check) == view.name and isinstance(check.get("input"), str):
            return check["input"]
    return inputs.LOGITS


@dataclass
class MatrixSection:
    kind: str  # inputs.LOGITS, HIDDEN or VOCAB_PARALLEL
    title: str
    table_id: str  # the logits section keeps the id "matrix-table"
    views: list[ImplView]
    features: list[Feature]
    cells: dict[str, dict[str, Cell]]
    worlds: dict[str, list[dict]] = field(default_factory=dict)  # vocab-parallel: world_runs

    @property
    def groups(self) -> list[tuple[str, list[Feature]]]:
        return [(g, [f for f in self.features if f.group == g])
                for g in dict.fromkeys(f.group for f in self.features)]


def _within(entry: dict) -> bool:
    """Only the check's own verdict on this gradient counts: an error under the budget is not
    enough (a wrong shape or a NaN where the reference is finite measures 0 over the finite
    elements), and a file that recorded no verdict (schema 1) is never relabelled."""
    return entry.get("within") is True


def _gradient_feature(name: str, kinds: dict[str, str]) -> Feature:
    def view_of(check: dict) -> dict | None:
        entry = inputs.gradients_of(check, kinds).get(name)
        if entry is None:
            return None
        if outcome_of(check) in BAD | {"xfailed", "divergence"} and _within(entry):
            return dict(check, outcome="passed")  # failed for another tensor than this one
        return check
    return Feature(f"gradient:{name}", "gradient within budget", inputs.label(name),
                   lambda p: False, lambda view: None, view_of)


def _extra_features(kind: str, checks: list[dict], views: list[ImplView],
                    kinds: dict[str, str]) -> list[Feature]:
    names = dict.fromkeys(n for c in checks for n in inputs.gradients_of(c, kinds))
    if kind == inputs.HIDDEN:
        out = [Feature("bias", "hidden states", "bias b", lambda p: active(p.get("bias")),
                       lambda view: None if view.record.get("bias") is None
                       else bool(view.record.get("bias")))]
        order = [n for n in ("hidden", "classifier", "bias") if n in names]
        return out + [_gradient_feature(n, kinds) for n in order + [n for n in names if n not in order]]
    if kind == inputs.VOCAB_PARALLEL:
        worlds = ordered([inputs.world_of(c, kinds) for c in checks]
                          + [w for v in views for w in (v.record.get("worlds") or ())
                             if isinstance(v.record.get("worlds"), list)], ())
        worlds = sorted(w for w in worlds if isinstance(w, int))
        out = [Feature(f"world:{w}", "world size", f"world {w}",
                       lambda p, w=w: p.get("world") == w, _world_claim(w)) for w in worlds]
        ranks = sorted((n for n in names if n.startswith("rank")), key=lambda n: int(n[4:]))
        return out + [_gradient_feature(n, kinds) for n in ranks + [n for n in names if n == "worst_rank"]]
    return []


def _world_claim(world: int) -> Callable[[ImplView], bool | None]:
    def supported(view: ImplView) -> bool | None:
        worlds = view.record.get("worlds")
        return world in worlds if isinstance(worlds, list) else None
    return supported


def matrix_sections(results: dict, views: list[ImplView]) -> list[MatrixSection]:
    """One conformance matrix per input kind present: the logits records', the
    hidden-states records' (with the bias and a column per judged gradient: dh, dW, db)
    and the vocab-parallel records' (a column per world size and per rank's shard)."""
    kinds = inputs.input_kinds(results.get("environment"))
    out = []
    for kind, title in inputs.SECTIONS:
        members = [v for v in views if inputs.section_of(input_of_view(v, results)) == kind]
        if not members:
            continue
        names = {v.name for v in members}
        checks = [c for c in conformance_checks(results) if impl_of(c) in names]
        feats, cells = matrix(results, members, _extra_features(kind, checks, members, kinds))
        section = MatrixSection(kind, title, "matrix-table" if kind == inputs.LOGITS else f"matrix-{kind}",
                                members, feats, cells)
        if kind == inputs.VOCAB_PARALLEL:
            section.worlds = {v.name: world_runs(checks, v, kinds) for v in members}
        out.append(section)
    return out


def world_runs(checks: list[dict], view: ImplView, kinds: dict[str, str]) -> list[dict]:
    """A vocab-parallel record's world sizes per device: how many checks ran at each (and
    how they came out), and why those that did not run were skipped."""
    mine = [c for c in checks if impl_of(c) == view.name]
    devices = ordered([params_of(c).get("device") for c in mine], DEVICE_ORDER)
    claimed = view.record.get("worlds") if isinstance(view.record.get("worlds"), list) else []
    worlds = sorted({w for w in [inputs.world_of(c, kinds) for c in mine] + claimed if isinstance(w, int)})
    rows = []
    for device in devices:
        for world in worlds:
            here = [c for c in mine if params_of(c).get("device") == device
                    and inputs.world_of(c, kinds) == world]
            counts = Counter(outcome_of(c) for c in here)
            ran = sum(counts[o] for o in MEASURED)
            skipped = [c for c in here if outcome_of(c) == "skipped"]
            state = ("fail" if sum(counts[o] for o in BAD) else "known" if counts["xfailed"] + counts["divergence"]
                     else "pass" if ran else "skipped" if skipped else "none")
            rows.append({"device": device, "backend": inputs.BACKENDS.get(text(device), ""),
                         "world": world, "claimed": world in claimed, "ran": ran, "state": state,
                         "passed": counts["passed"], "failing": sum(counts[o] for o in BAD),
                         "known": counts["xfailed"] + counts["divergence"], "skipped": len(skipped),
                         "reasons": reasons(skipped) if skipped else ""})
    return rows
