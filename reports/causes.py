"""Findings by root cause: the checks of one implementation that failed for one reason.

Every failed check records what failed as data (results.json `causes`, written by
lsuite/running/causes.py): the kind of difference, the compared quantity, for an exception its
type and the line that raised it. A check is grouped by its primary cause (the first
kind in KINDS; for comparisons, the check's family and the quantity compared), never by
its message, which embeds the case's numbers: one wrong shape, one raising line, one
wrong denominator is one finding, however many checks and cases show it. A check that
recorded no cause (a file written before causes were, or a failure outside the runner)
is grouped by its check name and outcome.

Plain dicts in and out, so results.json holds the findings (`findings`) and the report
and the terminal show the same ones.
"""

from __future__ import annotations

import re
from collections import Counter

from . import repro
from .analysis import impl_of, outcome_of, params_of, text

KINDS = ("raised", "crashed", "timeout", "not_run", "not_a_tensor", "wrong_shape",
         "no_gradient", "mutated_input", "nan_inf_pattern", "over_budget", "wrong_dtype",
         "wrong_device", "failed")  # as lsuite/running/causes.py, most fundamental first
# kinds judged against an expectation that depends on the check's family (reference,
# invariant, ...): the family and the quantity are part of what failed
COMPARED = frozenset({"nan_inf_pattern", "over_budget"})
QUANTITY_ORDER = ("out", "value", "grad")
# outcome -> the group of outcomes a finding is about
GROUPS = {"failed": "failed", "error": "failed", "xpassed": "no longer shows",
          "xfailed": "known defect", "divergence": "divergence", "suite_error": "suite error"}
NAMES_SHOWN = 12  # check names listed in a finding's summary line


def parts_of(check: dict) -> list[dict]:
    value = check.get("causes")
    return [p for p in value if isinstance(p, dict)] if isinstance(value, list) else []


def _quantity(value) -> str:
    """The compared quantity without the case's numbers ("value at eps=0.1" -> "value at eps=#")."""
    return re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", text(value))


def primary(parts: list[dict]) -> dict | None:
    """The most fundamental cause of a check (KINDS order, then out/value/grad)."""
    def order(p):
        kind, quantity = text(p.get("kind")), text(p.get("quantity"))
        return (KINDS.index(kind) if kind in KINDS else len(KINDS),
                QUANTITY_ORDER.index(quantity) if quantity in QUANTITY_ORDER else len(QUANTITY_ORDER))
    return min(parts, key=order) if parts else None


def key_of(check: dict) -> tuple:
    """What failed, without the case: the grouping key of `findings`, and what the
    regression comparison uses to tell a known defect failing differently."""
    cause = primary(parts_of(check))
    if cause is None:
        return ("failed", text(check.get("check")))
    kind, data = text(cause.get("kind")), cause.get("data") or {}
    if kind == "raised":
        return (kind, text(cause.get("quantity")), text(data.get("exception")), text(cause.get("site")))
    if kind == "failed":  # no structured cause: one finding per check and exception type
        return (kind, text(check.get("check")), text(cause.get("quantity")))
    if kind == "wrong_shape":
        return (kind, _quantity(cause.get("quantity")), text(data.get("relation")))
    if kind == "nan_inf_pattern":
        return (kind, text(check.get("kind")), _quantity(cause.get("quantity")), text(data.get("pattern")))
    computed = cause.get("computes") if isinstance(cause.get("computes"), dict) else {}
    if kind == "over_budget" and computed.get("closest"):  # one diagnosis, value and grad alike
        denominator = text(computed.get("denominator_label"))
        as_claimed = computed.get("reduction") != "mean" or denominator == computed.get("claimed_denominator")
        return (kind, text(check.get("kind")), "computes", text(computed.get("closest")),
                "" if as_claimed else denominator)
    if kind in COMPARED:
        return (kind, text(check.get("kind")), _quantity(cause.get("quantity")))
    return (kind, _quantity(cause.get("quantity")))


def axes(checks: list[dict]) -> tuple[dict, dict]:
    """(axis -> its values, for axes that vary across the checks; axis -> its one value)."""
    seen: dict[str, list] = {}
    for c in checks:
        for axis, value in params_of(c).items():
            values = seen.setdefault(str(axis), [])
            if value not in values:
                values.append(value)
    missing = {a for a in seen if any(a not in params_of(c) for c in checks)}
    varying = {a: sorted(v, key=str) for a, v in seen.items() if len(v) > 1 or a in missing}
    constant = {a: v[0] for a, v in seen.items() if a not in varying}
    return varying, constant


def _ratio_words(ratios: list[float]) -> str:
    if not ratios:
        return ""
    lo, hi = min(ratios), max(ratios)
    if abs(hi - lo) <= 1e-3 * max(abs(hi), 1e-300):
        return f"; {lo:.4g}x the reference on every such check"
    return f"; {lo:.3g}x to {hi:.3g}x the reference"


def summary(key: tuple, checks: list[dict], cause: dict | None) -> str:
    """One line saying what failed, without any one case's numbers."""
    kind = key[0]
    if cause is None or kind == "failed":
        raised = f" ({key[2]})" if len(key) > 2 and key[2] else ""
        return f"check {key[1]} failed{raised}; no structured cause recorded: see the message"
    data = cause.get("data") or {}
    if kind == "raised":
        where = f" at {key[3]}" if key[3] else ""
        return f"{key[1]} raised {key[2]}{where}"
    if kind == "wrong_shape":
        return f"{key[1]} has the wrong shape: {key[2]} (e.g. {text(cause.get('detail'))})"
    if kind == "nan_inf_pattern":
        return f"{key[2]} in {key[1]} checks: {key[3]}"
    if kind == "over_budget" and key[2] == "computes":
        claimed = text((cause.get("computes") or {}).get("claimed"))
        what = (f"its value and gradient follow the {key[3]} convention" if key[3] != claimed
                else f"its targets are the claimed {claimed} ones")
        if key[4]:
            what += f", but its mean divides by {key[4]}"
        return f"{what} ({key[1]} checks over budget; claims {claimed})"
    if kind == "over_budget":
        ratios = [r for r in (num_ratio(c) for c in checks) if r is not None]
        return f"{key[2]} over its budget in {key[1]} checks{_ratio_words(ratios)}"
    if kind == "wrong_dtype":
        return f"{key[1]} has the wrong dtype (e.g. {data.get('actual')}, expected {data.get('expected')})"
    return text(cause.get("detail")) or f"{kind}: {key[-1]}"


def num_ratio(check: dict) -> float | None:
    cause = primary(parts_of(check))
    value = (cause or {}).get("data", {}).get("ratio") if cause else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def findings(checks: list[dict], environment: dict | None = None) -> list[dict]:
    """One finding per implementation, outcome group and cause, largest first; with the
    run's `environment`, each with a repro script (reports/repro.py)."""
    env = environment if isinstance(environment, dict) else {}
    records = {text(i.get("name")): i for i in env.get("impls") or () if isinstance(i, dict)}
    groups: dict[tuple, list[dict]] = {}
    for c in checks:
        group = GROUPS.get(outcome_of(c))
        if group is None:
            continue
        groups.setdefault((impl_of(c), group, key_of(c)), []).append(c)
    out = []
    for (impl, group, key), members in groups.items():
        first = members[0]
        cause = primary(parts_of(first))
        varying, constant = axes(members)
        also = {f"{_quantity(p.get('quantity'))} {text(p.get('kind')).replace('_', ' ')}"
                for c in members for p in parts_of(c) if p is not primary(parts_of(c))}
        finding = {
            "impl": impl, "outcome": group,
            "outcomes": dict(Counter(outcome_of(c) for c in members)),
            "cause": list(key), "summary": summary(key, members, cause),
            "count": len(members),
            "checks": sorted({text(c.get("check")) for c in members}),
            "axes_varying": varying, "axes_constant": constant,
            "also": sorted(also),
            "example": text((cause or {}).get("detail")) or _first_line(first.get("message")),
            "nodeid": text(first.get("nodeid")), "repro": first.get("repro"),
            "traceback": (cause or {}).get("traceback"),
        }
        computed = next((p["computes"] for c in sorted(members, key=_precise_first) for p in parts_of(c)
                         if isinstance(p.get("computes"), dict)), None)
        finding["computes"] = None if computed is None else text(computed.get("sentence"))
        finding["computed"] = computed
        record = records.get(impl)
        finding["script"] = None if record is None or group == "divergence" else repro.script(
            first, record, env.get("seed"), finding["summary"])
        out.append(finding)
    order = list(dict.fromkeys(GROUPS.values()))
    out.sort(key=lambda f: (f["impl"], order.index(f["outcome"]), -f["count"]))
    return out


def _precise_first(check: dict) -> tuple:
    """float64 cases first, then the fewest classes (where conventions differ the most)."""
    params = params_of(check)
    order = ("float64", "float32")
    dtype = text(params.get("dtype"))
    K = params.get("K")
    return (order.index(dtype) if dtype in order else len(order),
            K if isinstance(K, int) and K >= 3 else 1 << 30)


def _first_line(message) -> str:
    return next((s.strip() for s in text(message).splitlines() if s.strip()), "")[:300]


def of_results(results: dict) -> list[dict]:
    """The findings a results.json recorded, or, for a file written before it recorded
    them, the findings of its checks (grouped by check name where no cause was recorded)."""
    recorded = results.get("findings")
    if isinstance(recorded, list) and all(isinstance(f, dict) for f in recorded):
        return recorded
    return findings([c for c in results.get("checks") or () if isinstance(c, dict)],
                    results.get("environment"))
