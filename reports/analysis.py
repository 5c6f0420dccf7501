"""Turn a validated results dict into what the report shows: the helpers every table
uses, verdicts and the conformance matrix (accuracy.py: the accuracy table; findings.py:
findings, skips and the equivalence checks; conventions.py: the worked example; sections.py:
one matrix per input kind).

Everything here is plain data (dicts, lists, dataclasses) so templates only lay it out
and tests can check numbers without parsing HTML. Every optional field of schema 1 may
be missing or null; a check naming an implementation the environment does not declare
is still counted, under that name, marked undeclared.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lsresults.dtypes import UNIT_ROUNDOFF as UNIT_ROUNDOFF  # re-exported for compare.py
from lsresults.verdicts import BAD, MEASURED, OUTCOMES, verdict_class, verdict_of

# Orders for the matrix columns; values not listed follow in first-seen order.
REDUCTION_ORDER = ("none", "sum", "mean", "batchmean")
DTYPE_ORDER = ("float64", "float32", "bfloat16", "float16")
DEVICE_ORDER = ("cpu", "cuda")
# A check's kind (results.json `kind`): equivalence checks compare conventions or pairs of
# implementations and are kept out of every implementation's verdict; any other kind
# ("conformance", "invariant", "argument", or one this report does not know) counts.
EQUIVALENCE = "equivalence"



def num(value) -> float | None:
    """A JSON number as float (NaN and inf kept), anything else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def text(value) -> str:
    return "" if value is None else str(value)


def params_of(check: dict) -> dict:
    value = check.get("params")
    return value if isinstance(value, dict) else {}


def metrics_of(check: dict) -> dict:
    value = check.get("metrics")
    return value if isinstance(value, dict) else {}


def outcome_of(check: dict) -> str:
    """The recorded outcome; anything unrecognised counts as an error (never as a pass)."""
    outcome = check.get("outcome")
    return outcome if outcome in OUTCOMES else "error"


def impl_of(check: dict) -> str:
    return text(check.get("impl")) or "(no impl recorded)"


def kind_of(check: dict) -> str:
    """The check's recorded kind; for files written before kinds were recorded, the
    check-name heuristic those files were rendered with (an "equivalence…" name)."""
    kind = check.get("kind")
    if isinstance(kind, str) and kind:
        return kind
    return EQUIVALENCE if text(check.get("check")).startswith("equivalence") else "conformance"


def is_equivalence(check: dict) -> bool:
    """Equivalence checks compare conventions or pairs of implementations ("a vs b"): they
    are shown in their own table and findings, never in an implementation's verdict."""
    return kind_of(check) == EQUIVALENCE


def conformance_checks(results: dict) -> list[dict]:
    return [c for c in results.get("checks") or () if not is_equivalence(c)]


def worst(values: Iterable[float | None]) -> float | None:
    """The largest value, NaN counting as the worst of all; None if there is none."""
    best = None
    for v in values:
        if v is None:
            continue
        if best is None or math.isnan(v) or (not math.isnan(best) and v > best):
            best = v
        if math.isnan(best):
            return best
    return best


def ratio(err: float | None, base: float | None) -> float | None:
    """err / base, guarding zero: 0/0 is 1 (both exact), x/0 is inf."""
    if err is None or base is None:
        return None
    if base == 0:
        return 1.0 if err == 0 else math.inf
    return err / base


# --------------------------------------------------------------------------- verdicts


@dataclass
class ImplView:
    name: str
    declared: bool  # listed in environment.impls
    record: dict
    counts: Counter = field(default_factory=Counter)

    @property
    def supports(self) -> dict:
        value = self.record.get("supports")
        return value if isinstance(value, dict) else {}

    @property
    def reductions(self) -> list:
        value = self.record.get("reductions")
        return list(value) if isinstance(value, list) else []

    def get(self, key: str) -> str:
        return text(self.record.get(key))

    @property
    def known_defects(self) -> list[dict]:
        """The declared known defects that are objects, each with `scope`: the checks and
        kinds it covers as one text ("any" when it names none)."""
        value = self.record.get("known_defects")
        if not isinstance(value, list):
            return []
        return [{**d, "scope": _scope(d)} for d in value if isinstance(d, dict)]

    @property
    def failing(self) -> int:
        return sum(self.counts[o] for o in BAD)

    @property
    def verdict(self) -> str:
        return verdict_of(self.counts)

    @property
    def verdict_class(self) -> str:
        """The verdict's colour: conforms (green), except (amber), fails (red), not-checked."""
        return verdict_class(self.verdict)


def _scope(defect: dict) -> str:
    names = []
    for key in ("checks", "kinds"):
        value = defect.get(key)
        names += [text(v) for v in value] if isinstance(value, list) else [text(value)] if value else []
    return ", ".join(names) or "any"


def impl_views(results: dict) -> list[ImplView]:
    """Declared implementations in declared order, then undeclared ones seen in checks."""
    views: dict[str, ImplView] = {}
    for record in (results.get("environment") or {}).get("impls") or ():
        name = text(record.get("name")) or "(unnamed)"
        views.setdefault(name, ImplView(name, True, record))
    for check in conformance_checks(results):
        name = impl_of(check)
        view = views.setdefault(name, ImplView(name, False, {}))
        view.counts[outcome_of(check)] += 1
    return list(views.values())


# --------------------------------------------------------------------- conformance matrix


@dataclass(frozen=True)
class Feature:
    key: str  # stable id, e.g. "dtype:bfloat16" (tests and data-feature attributes use it)
    group: str
    label: str
    selects: Callable[[dict], bool]  # params -> does this check exercise the feature
    supported: Callable[[ImplView], bool | None]  # None: the record does not say
    # check -> the check as this feature counts it, or None when it does not exercise it
    # (a gradient's column: a failed check whose gradient was within budget passes there)
    view_of: Callable[[dict], dict | None] | None = None

    def checks(self, checks: list[dict]) -> list[dict]:
        if self.view_of is None:
            return [c for c in checks if self.selects(params_of(c))]
        return [v for v in map(self.view_of, checks) if v is not None]


def ordered(seen: Iterable, order: tuple) -> list:
    seen = dict.fromkeys(s if isinstance(s, (str, int, float)) else text(s) for s in seen if s is not None)
    return [o for o in order if o in seen] + [s for s in seen if s not in order]


def _flag(key: str) -> Callable[[ImplView], bool | None]:
    def supported(view: ImplView) -> bool | None:
        value = view.supports.get(key)
        return None if value is None else bool(value)
    return supported


def _member(key: str | None, value) -> Callable[[ImplView], bool | None]:
    def supported(view: ImplView) -> bool | None:
        listed = view.reductions if key is None else view.supports.get(key)
        return value in listed if isinstance(listed, list) else None
    return supported


def active(value) -> bool:
    return value not in (None, "none", False)


def _listed(view: ImplView, key: str) -> list:
    value = view.supports.get(key)
    return value if isinstance(value, list) else []


def features(results: dict, views: list[ImplView]) -> list[Feature]:
    checks = conformance_checks(results)
    params = [params_of(c) for c in checks]
    reductions = ordered([r for v in views for r in v.reductions] + [p.get("reduction") for p in params],
                          REDUCTION_ORDER)
    dtypes = ordered([d for v in views for d in _listed(v, "dtypes")]
                      + [p.get("dtype") for p in params], DTYPE_ORDER)
    devices = ordered([d for v in views for d in _listed(v, "devices")]
                       + [p.get("device") for p in params], DEVICE_ORDER)
    out = [Feature(f"reduction:{r}", "reduction", text(r), lambda p, r=r: p.get("reduction") == r,
                   _member(None, r)) for r in reductions]
    out += [
        Feature("ignore_index", "inputs", "ignore_index", lambda p: active(p.get("ignore")),
                _flag("ignore_index")),
        Feature("weights", "inputs", "class weights", lambda p: active(p.get("weight")),
                _flag("weights")),
        Feature("prob_targets", "inputs", "probability targets", lambda p: p.get("targets") == "probs",
                _flag("prob_targets")),
        Feature("nd", "inputs", "N-D", lambda p: p.get("layout") == "nd", _flag("nd")),
        Feature("unbatched", "inputs", "unbatched", lambda p: p.get("layout") == "unbatched",
                _flag("unbatched")),
    ]
    out += [Feature(f"dtype:{d}", "dtype", text(d), lambda p, d=d: p.get("dtype") == d,
                    _member("dtypes", d)) for d in dtypes]
    out += [Feature(f"device:{d}", "device", text(d), lambda p, d=d: p.get("device") == d,
                    _member("devices", d)) for d in devices]
    return out


@dataclass
class Cell:
    state: str  # pass | fail | known | unsupported | skipped | none
    label: str  # the state in words (colour is never the only signal)
    detail: str  # counts: "5" passed, "3/40" failing of those that ran
    title: str  # reasons, for the hover text
    counts: dict

    @property
    def text(self) -> str:
        return f"{self.label} {self.detail}".strip()


def first_line(message: str, limit: int = 300) -> str:
    line = next((s.strip() for s in text(message).splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def reasons(checks: list[dict], limit: int = 3) -> str:
    common = Counter(first_line(c.get("message")) or "(no reason recorded)" for c in checks)
    parts = [f"{n}× {m}" if n > 1 else m for m, n in common.most_common(limit)]
    if len(common) > limit:
        parts.append(f"… and {len(common) - limit} other reasons")
    return "\n".join(parts)


def cell(view: ImplView, feature: Feature, checks: list[dict]) -> Cell:
    counts = Counter(outcome_of(c) for c in checks)
    supported = feature.supported(view)
    bad = sum(counts[o] for o in BAD)
    ran = sum(counts[o] for o in MEASURED)
    skipped = [c for c in checks if outcome_of(c) == "skipped"]
    skip_note = f", {len(skipped)} skipped" if skipped else ""
    if bad:
        failing = [c for c in checks if outcome_of(c) in BAD]
        return Cell("fail", "fail", f"{bad}/{ran}", reasons(failing), dict(counts))
    if counts["xfailed"] or counts["divergence"]:
        known = [c for c in checks if outcome_of(c) in ("xfailed", "divergence")]
        label = "known defect" if counts["xfailed"] else "divergence"
        n = counts["xfailed"] + counts["divergence"]
        return Cell("known", label, f"{n}/{ran}", reasons(known), dict(counts))
    if counts["passed"]:
        title = f"{counts['passed']} passed{skip_note}" + (f"\n{reasons(skipped)}" if skipped else "")
        return Cell("pass", "pass", f"{counts['passed']}", title, dict(counts))
    if supported is False:
        reason = reasons(skipped) if skipped else "not declared in the implementation's record"
        return Cell("unsupported", "unsupported", "", reason, dict(counts))
    if skipped:
        return Cell("skipped", "skipped", f"{len(skipped)}", reasons(skipped), dict(counts))
    return Cell("none", "—", "", "no check exercised this feature", dict(counts))


def matrix(results: dict, views: list[ImplView],
           extra: list[Feature] = ()) -> tuple[list[Feature], dict[str, dict[str, Cell]]]:
    """The features (columns) and each view's cells, over the checks of `views` only."""
    names = {v.name for v in views}
    feats = features({"checks": [c for c in conformance_checks(results) if impl_of(c) in names]},
                     views) + list(extra)
    by_impl: dict[str, list[dict]] = defaultdict(list)
    for check in conformance_checks(results):
        by_impl[impl_of(check)].append(check)
    rows = {}
    for view in views:
        checks = by_impl.get(view.name, [])
        rows[view.name] = {f.key: cell(view, f, f.checks(checks)) for f in feats}
    return feats, rows
