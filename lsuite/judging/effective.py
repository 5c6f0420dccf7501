"""What a cross-entropy implementation actually computes, recovered from its gradient.

For a cross-entropy with target distribution q over the classes of a row (total mass
s = Σ q), the gradient of the row's loss with respect to its logits is s·p − q, with p
the softmax of the logits; a reduction scales each row by cotangent / D (D the mean's
denominator; 1 for `sum` and `none`). So, with p from the float64 softmax of the inputs,
a label-smoothing target (one mass on the true class, one on every other class) is
recovered per row by a least-squares line through the other classes' gradient entries:
G_c = (s/D)·p_c − a/D, hence the other-class mass a, the total mass s, and the true
class's b = s·p_y − D·G_y, all up to the one factor D. Value and gradient both depend
on q/D only, so D is chosen among the denominators implementations use (`DENOMINATORS`)
as the one under which q is a known convention (docs/specification.md §1), the claimed one
first.

`recover` is pure NumPy/SciPy on plain arrays: the harness calls it when a reference
check of a logits record fails, and its sentence goes into the finding (reports/causes.py).
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from reference import rows_last

FIT = 0.5  # the closest convention fits when every mass is within half its per-class mass ε/K
MIN_SCALE = 1e-3  # ... or of this, when ε/K is smaller (ε = 0: the one-hot target)
INTEGER = 0.02  # a/ε is "ε/n" when n is within 2% of an integer


def conventions(eps: float, K: int) -> dict[str, tuple[float, float, float | None]]:
    """name -> (true-class mass, other-class mass, padding-column mass or None): the
    distributions of docs/specification.md §1, and smoothing ignored altogether."""
    out = {"inclusive": (1 - eps + eps / K, eps / K, eps / K),
           "exclusive": (1 - eps, eps / (K - 1), eps / (K - 1))}
    if K > 2:
        out["padding_excluded"] = (1 - eps, eps / (K - 2), 0.0)
    out["no smoothing (ε ignored)"] = (1.0, 0.0, 0.0)
    return out


def _rows(logits, target, grad, cotangent, ignore_index, pad_index):
    """Per kept row: (s/D, a/D, b/D, pad/D or nan, residual) by least squares."""
    z, g = rows_last(np.asarray(logits, dtype=float)), rows_last(np.asarray(grad, dtype=float))
    y = np.asarray(target).reshape(-1).astype(np.int64)
    cot = np.ones(len(y)) if cotangent is None else np.asarray(cotangent, dtype=float).reshape(-1)
    p = softmax(z, axis=1)
    out = []
    for i in range(len(y)):
        if (ignore_index is not None and y[i] == ignore_index) or not 0 <= y[i] < z.shape[1] or cot[i] == 0:
            continue
        gi = g[i] / cot[i]
        other = np.ones(z.shape[1], dtype=bool)
        other[y[i]] = False
        if pad_index is not None and 0 <= pad_index < z.shape[1]:
            other[pad_index] = False
        if other.sum() < 2 or np.ptp(p[i, other]) == 0 or not np.all(np.isfinite(gi)):
            continue
        slope, intercept = np.polyfit(p[i, other], gi[other], 1)
        residual = float(np.max(np.abs(slope * p[i, other] + intercept - gi[other])))
        pad = float(slope * p[i, pad_index] - gi[pad_index]) if pad_index is not None else np.nan
        out.append((slope, -intercept, slope * p[i, y[i]] - gi[y[i]], pad, residual))
    return np.array(out) if out else None


def _distance(masses, reference, eps: float, K: int) -> float:
    scale = max(eps / K, MIN_SCALE)
    true, other, pad = masses
    want_true, want_other, want_pad = reference
    d = max(abs(true - want_true), abs(other - want_other))
    if pad is not None and not np.isnan(pad) and want_pad is not None:
        d = max(d, abs(pad - want_pad))
    return d / scale


def recover(logits, target, grad, *, eps: float, claimed: str, reduction: str,
            denominators: dict[str, float], cotangent=None, ignore_index=None,
            pad_index=None) -> dict | None:
    """The target distribution and denominator the gradient implies, or None when the
    rows cannot tell (K < 3, no kept row, non-finite gradient).

    denominators: label -> value, the claimed one first ({"non-ignored rows": 16.0, ...});
    for `sum` and `none` only {"none (sum)": 1.0} is meaningful. cotangent: the per-row
    upstream gradient of a `none` reduction (None: ones)."""
    shape = np.shape(logits)
    K = shape[0] if len(shape) == 1 else shape[1]
    if K < 3:
        return None
    rows = _rows(logits, target, grad, cotangent, ignore_index, pad_index)
    if rows is None:
        return None
    s, a, b, pad, residual = (np.median(rows[:, j]) for j in range(5))
    table = conventions(eps, K)
    best = None
    for label, D in denominators.items():
        masses = (b * D, a * D, None if pad_index is None else pad * D)
        for name, reference in table.items():
            d = _distance(masses, reference, eps, K)
            if best is None or d < best[0] - 1e-12:
                best = (d, label, D, name)
    fits = best is not None and best[0] <= FIT
    label, D = (best[1], best[2]) if fits else next(iter(denominators.items()))
    result = {
        "claimed": claimed, "claimed_masses": list(table.get(claimed, (None, None, None))),
        "true": float(b * D), "other": float(a * D), "pad": None if pad_index is None else float(pad * D),
        "total": float(s * D), "denominator": float(D), "denominator_label": label,
        "claimed_denominator": next(iter(denominators)), "reduction": reduction,
        "closest": best[3] if fits else None, "rows": int(len(rows)),
        "uniform_other": bool(residual <= 1e-3 * max(abs(s), abs(a), 1e-12)),
        "other_as": _as_fraction(eps, float(a * D), shape), "eps": eps, "K": K, "shape": list(shape),
    }
    result["sentence"] = sentence(result)
    return result


def _as_fraction(eps: float, other: float, shape: tuple) -> str | None:
    """"ε/n" (naming the input's dimension of size n, if one has it) when a = ε/n."""
    if eps <= 0 or other <= 0:
        return None
    n = eps / other
    if abs(n - round(n)) > INTEGER * n or round(n) < 1:
        return None
    n = int(round(n))
    dims = [i for i, size in enumerate(shape) if size == n]
    where = ""
    if dims and not (len(shape) > 1 and dims == [1]):
        where = f": ε divided by dimension {dims[-1]} of the {tuple(shape)} input, of size {n}"
    return f"ε/{n}{where}"


def sentence(r: dict) -> str:
    """The recovered distribution beside the claim, in one sentence."""
    names = {"inclusive": "inclusive ε/K", "exclusive": "exclusive ε/(K−1)",
             "padding_excluded": "padding-excluded ε/(K−2)"}
    claimed_other = r["claimed_masses"][1]
    claim = names.get(r["claimed"], r["claimed"])
    if claimed_other is not None:
        claim += f" = {claimed_other:.4g} per other class"
    computed = f"{r['other']:.4g} per other class"
    if r["other_as"]:
        computed += f" ({r['other_as']})"
    computed += f", {r['true']:.4g} on the true class"
    if r["pad"] is not None:
        computed += f", {r['pad']:.4g} on the padding column"
    computed += f", total mass {r['total']:.4g} per row"
    if not r["uniform_other"]:
        computed += " (the other classes' masses are not all equal)"
    closest = {"no smoothing (ε ignored)": "no smoothing: ε is ignored"}.get(r["closest"], r["closest"])
    verdict = f"closest known convention: {closest}" if closest else "no known convention fits"
    if r["reduction"] == "mean":
        same = r["denominator_label"] == r["claimed_denominator"]
        verdict += (f"; its mean divides by {r['denominator_label']} ({r['denominator']:g})"
                    + ("" if same else f", not by {r['claimed_denominator']}"))
    return f"claims {claim}; computes {computed} on a {tuple(r['shape'])} input; {verdict}"
