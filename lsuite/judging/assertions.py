"""The one comparison of the suite: how far `actual` is from `expected`, and the assertion
built on it. Every check (reference, invariant, equivalence) and PyTorch's own error
(lsuite/judging/torch_error.py) measure through `measure`; every check judges through
`assert_close`.

After numpy.testing.assert_allclose and torch.testing.assert_close: actual first; the NaN
and infinity pattern is compared before any value (a NaN where the expected value is finite
is never "close"); the message names the budget and how it was formed, the worst element
with its index, and how many elements are over budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lsuite.running import causes


@dataclass(frozen=True)
class Budget:
    """An allowed max abs difference and, for the message, how it was formed."""

    allowed: float
    how: str  # e.g. "floor 2e-05 (rtol x scale + atol)" or "4 x PyTorch's own error 3e-06"

    def __str__(self) -> str:
        return f"{self.allowed:.3g} ({self.how})"


@dataclass(frozen=True)
class Difference:
    """What `measure` found; plain Python numbers so results.json can hold them."""

    shape_mismatch: str | None  # "actual shape (3,) vs expected (4,)", else None
    pattern_index: tuple[int, ...] | None  # first element whose NaN/inf pattern differs
    pattern_count: int  # elements whose NaN/inf pattern differs
    max_abs: float  # over elements finite on both sides
    worst_index: tuple[int, ...]  # where max_abs is reached
    scale: float  # max |expected| over elements finite on both sides
    total: int  # number of elements compared

    @property
    def max_rel(self) -> float:
        """Normwise relative error: max abs error over the largest expected magnitude."""
        if self.scale > 0:
            return self.max_abs / self.scale
        return 0.0 if self.max_abs == 0 else float("inf")


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    if not shape or 0 in shape:
        return ()
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def measure(actual, expected) -> Difference:
    """Compare two arrays elementwise in float64 (NaN matches NaN, +-inf match themselves)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    if actual.shape != expected.shape:
        return Difference(f"actual shape {actual.shape} vs expected {expected.shape}", None, 0,
                          0.0, (), 0.0, int(expected.size))
    both = np.isfinite(actual) & np.isfinite(expected)
    same_special = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    pattern = ~both & ~same_special
    with np.errstate(invalid="ignore"):  # inf - inf where not both finite: masked
        diff = np.where(both, np.abs(actual - expected), 0.0)
    flat_worst = int(np.argmax(diff)) if diff.size else 0  # empty: no element, index ()
    return Difference(
        shape_mismatch=None,
        pattern_index=_index(int(np.argmax(pattern)), pattern.shape) if pattern.any() else None,
        pattern_count=int(pattern.sum()),
        max_abs=float(diff.max()) if diff.size else 0.0,
        worst_index=_index(flat_worst, diff.shape),
        scale=float(np.max(np.abs(expected[both]))) if both.any() else 0.0,
        total=int(expected.size),
    )


def _at(index: tuple[int, ...]) -> str:
    return f"[{', '.join(map(str, index))}]" if index else ""


def problem(what: str, actual, expected, budget: Budget, diff: Difference | None = None) -> str | None:
    """The one-line verdict of a comparison: None when within budget, else what is wrong,
    as a causes.Explained carrying what failed as data (`cause`)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    d = measure(actual, expected) if diff is None else diff
    if d.shape_mismatch:
        return causes.Explained(f"{what}: {d.shape_mismatch}",
                                [causes.wrong_shape(what, actual.shape, expected.shape)])
    if d.pattern_index is not None:
        i = d.pattern_index
        return causes.Explained(
            f"{what}{_at(i)}={float(actual[i])!r}, but should be {float(expected[i])!r} (NaN/inf where the "
            f"expected value has none, or the reverse: {d.pattern_count}/{d.total} elements)",
            [cause(what, actual, expected, budget, d)])
    if d.max_abs > budget.allowed:
        i = d.worst_index
        with np.errstate(invalid="ignore"):
            over = int(np.sum(np.abs(actual - expected) > budget.allowed))
        at = f" at {_at(i)}" if i else ""
        return causes.Explained(
            f"{what}: max abs error {d.max_abs:.3g}{at} exceeds the budget {budget}; "
            f"{over}/{d.total} elements over budget; out={float(actual[i])!r}, but should be "
            f"{float(expected[i])!r}", [cause(what, actual, expected, budget, d)])
    return None


def _pattern(actual, expected) -> str:
    """Which way the NaN/inf patterns differ, in words without the case's numbers."""
    kinds = []
    finite_expected = np.isfinite(expected)
    if np.any(np.isnan(actual) & finite_expected):
        kinds.append("NaN where the expected value is finite")
    if np.any(np.isinf(actual) & finite_expected):
        kinds.append("inf where the expected value is finite")
    if np.any(np.isfinite(actual) & ~finite_expected):
        kinds.append("finite where NaN/inf is expected")
    if not kinds:
        kinds.append("NaN and inf swapped")
    return ", ".join(kinds)


def cause(what: str, actual, expected, budget: Budget, d: Difference) -> dict:
    """What failed in a comparison over budget, as data (lsuite/running/causes.py): the NaN/inf
    pattern, or the value over budget with the typical ratio actual/expected (a wrong
    denominator or scale shows as one ratio on every element)."""
    if d.pattern_index is not None:
        return causes.part("nan_inf_pattern", what, f"{what}: {_pattern(actual, expected)}",
                           pattern=_pattern(actual, expected), elements=d.pattern_count, total=d.total)
    ok = np.isfinite(actual) & np.isfinite(expected) & (np.abs(expected) > 0)
    ratio = float(np.median(actual[ok] / expected[ok])) if ok.any() else None
    detail = f"{what} over budget (max abs error {d.max_abs:.3g} > {budget.allowed:.3g})"
    return causes.part("over_budget", what, detail, max_abs=d.max_abs, budget=budget.allowed,
                       ratio=ratio)


def assert_close(what: str, actual, expected, budget: Budget,
                 fail: Callable[[str], BaseException] = AssertionError) -> Difference:
    """Raise `fail(message)` unless actual matches expected within `budget`; return the
    measured difference (for metrics) when it does."""
    __tracebackhide__ = True
    diff = measure(actual, expected)
    message = problem(what, actual, expected, budget, diff)
    if message is not None:
        raise fail(message)
    return diff
