"""The benchmark gate's thresholds and the statistics that judge one matched pair of
entries (lsresults/benchdiff.py matches the entries and collects the decisions).

Speed, timing mode (`measure` "time", the default): each entry keeps its per-round ratios
to nn.CrossEntropyLoss timed interleaved in the same run (`ratio_samples`), which cancels
the machine and most of its load; absolute times are never compared across runs. Two runs
are compared like asv compares (asv/commands/compare.py): a regression needs an effect
size *and* significance. The effect is the Hodges-Lehmann shift of the log per-round
ratios (the median of all current/baseline ratio quotients), with its distribution-free
confidence interval; the test is a one-sided Mann-Whitney U test on the same samples.
Every comparison also reports the smallest slowdown it could have flagged (`detectable`).
Entries without samples (files written before they were kept) fall back to the rule of
those files: the median ratio grown by more than the recorded (or the old default +90%)
threshold.

Speed, deterministic mode (`measure` "instructions"): instructions per call counted by
callgrind (lsuite/benchmarking/instructions.py); a count grown by more than INSTRUCTION_THRESHOLD is a
regression: no statistics needed, the count repeats to well under that.

Memory: `peak_over_logits`, the allocator's peak beyond the inputs in logits' sizes
(deterministic for a given op sequence), grown by more than MEMORY_THRESHOLD.

The constants below are the calibrated defaults; a run records the thresholds it judged
with under GATE, and `thresholds_of` reads them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

GATE = "benchmark_gate"  # results.json top-level key: thresholds and the gate's findings
SAMPLES = "ratio_samples"  # per-round impl/builtin time ratios of an entry (timing mode)
MAX_SAMPLES = 50  # stored per entry, at most (an entry with more keeps evenly spaced ones)

# Timing mode. ALPHA: significance of the one-sided Mann-Whitney test. RATIO_THRESHOLD:
# the effect size a slowdown must exceed besides: within-run rounds share a process's
# state, so two runs of the same commit differ systematically by more than any number of
# rounds averages away. Measured (docs/benchmarks.md) on the project's 2-core VM, idle,
# allocations reused (lsuite/benchmarking/timing.py, pin_allocator): 5 quick sweeps of the whole catalog,
# 20 ordered comparisons, 1,980 timed entry comparisons: the Hodges-Lehmann shift of a
# same-commit pair reached +18.2% at most (p90 +5.4%), so 0 alarms at +20% and at +25%.
# (Before the allocations were reused, page faults moved points by up to 67% between runs
# and the threshold had to be +70%.) Calibrate again on the gating machine
# (python -m lsuite.benchmarking.regression A B C ...); for finer gating use instruction counts.
ALPHA = 0.01
RATIO_THRESHOLD = 0.25
CI_LEVEL = 0.95  # of the shift's confidence interval shown beside each decision
# Entries without per-round samples (older files): the old rule and its calibrated +90%.
NO_SAMPLES_RATIO_THRESHOLD = 0.9
# Deterministic mode: same-commit counts differed by at most 0.002% over 192 entries here
# (docs/benchmarks.md), an extra clone() of the logits adds 2-3%, an extra pass over them 30% or more.
INSTRUCTION_THRESHOLD = 0.01
# Memory: peak_over_logits grown by more than this many logits' sizes. Peaks are the
# median of five calls' allocator replays (lsuite/benchmarking/memory.py); one more logits-sized
# buffer is +1.0 and is flagged.
MEMORY_THRESHOLD = 0.5
CALIBRATION = ("timing: 5 same-commit quick sweeps of the catalog on an idle 2-core VM, "
               "allocations reused: 20 ordered comparisons, 1,980 timed entries, same-commit shift "
               "at most +18.2%, 0 flagged at +25%; memory: 0 flagged, peaks identical to 0.005%; "
               "instructions: 2 same-commit runs of the catalog, 192 entries, max difference 0.002%")
# What older files recorded (no "alpha"): their ratio threshold applies to no-samples pairs.
RULE = "hodges-lehmann+mann-whitney"


def number(value) -> float | None:
    """A finite JSON number as float; anything else (bool, NaN, inf, text) None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None



@dataclass(frozen=True)
class Thresholds:
    ratio: float = RATIO_THRESHOLD  # effect size: relative growth of the per-round ratios
    memory: float = MEMORY_THRESHOLD  # growth of peak_over_logits, in logits' sizes
    alpha: float = ALPHA  # significance of the Mann-Whitney test
    instructions: float = INSTRUCTION_THRESHOLD  # relative growth of instructions per call
    no_samples_ratio: float = NO_SAMPLES_RATIO_THRESHOLD  # pairs without samples (old files)
    recorded: bool = False  # read from a results.json, not this module's defaults

    def describe(self) -> str:
        return (f"time/builtin +{self.ratio:.0%} and p < {self.alpha:g} (without samples "
                f"+{self.no_samples_ratio:.0%}), instructions +{self.instructions:.0%}, "
                f"peak/logits +{self.memory:g}")

    def record(self) -> dict:
        """What a run writes under GATE (with its findings)."""
        return {"rule": RULE, "ratio_threshold": self.ratio, "alpha": self.alpha,
                "no_samples_ratio_threshold": self.no_samples_ratio,
                "instruction_threshold": self.instructions, "memory_threshold": self.memory,
                "calibration": CALIBRATION}


def thresholds_of(*results) -> Thresholds:
    """The thresholds recorded in the first of these results dicts that has them; the
    defaults above for files written before thresholds were recorded. A file of the old
    rule (no "alpha") recorded one ratio threshold for bare medians: it applies to pairs
    without samples, and the defaults to the rest."""
    for payload in results:
        gate = payload.get(GATE) if isinstance(payload, dict) else None
        if not isinstance(gate, dict):
            continue
        ratio, memory = number(gate.get("ratio_threshold")), number(gate.get("memory_threshold"))
        if ratio is None or memory is None or ratio < 0 or memory < 0:
            continue
        alpha = number(gate.get("alpha"))
        if alpha is None:
            return Thresholds(memory=memory, no_samples_ratio=ratio, recorded=True)
        extra = {name: value for name, key in (("instructions", "instruction_threshold"),
                                               ("no_samples_ratio", "no_samples_ratio_threshold"))
                 if (value := number(gate.get(key))) is not None and value >= 0}
        return Thresholds(ratio=ratio, memory=memory, alpha=alpha, recorded=True, **extra)
    return Thresholds()


# ------------------------------------------------------------------ the statistics


def samples_of(entry: dict) -> np.ndarray | None:
    """An entry's per-round ratios as positive finite floats; None without (enough) samples."""
    raw = entry.get(SAMPLES)
    if not isinstance(raw, list):
        return None
    values = [v for v in (number(x) for x in raw) if v is not None and v > 0]
    return np.asarray(values) if len(values) >= 3 else None


def thin(values: list[float], limit: int = MAX_SAMPLES) -> list[float]:
    """At most `limit` of the values, evenly spaced in their order (what an entry stores)."""
    if len(values) <= limit:
        return list(values)
    step = len(values) / limit
    return [values[int(i * step)] for i in range(limit)]


def _p_greater(x: np.ndarray, y: np.ndarray) -> float:
    """One-sided Mann-Whitney U: p of x's distribution lying above y's."""
    return float(stats.mannwhitneyu(x, y, alternative="greater").pvalue)


def detectable(x: np.ndarray, y: np.ndarray, alpha: float = ALPHA, factor: float = RATIO_THRESHOLD) -> float:
    """The smallest slowdown (relative) a comparison of samples this noisy would flag: x
    (log ratios, re-centred on y's median) shifted up until the test is significant, and
    at least the effect-size threshold. inf when even complete separation is not
    significant (too few rounds)."""
    x = x - np.median(x) + np.median(y)
    top = float(np.max(y) - np.min(x)) + 1e-9
    if _p_greater(x + top, y) >= alpha:
        return math.inf
    low, high = 0.0, top
    if _p_greater(x, y) < alpha:
        high = 0.0
    for _ in range(40):  # bisection to well under 0.1% of a ratio
        if high - low < 1e-4:
            break
        mid = (low + high) / 2
        low, high = (low, mid) if _p_greater(x + mid, y) < alpha else (mid, high)
    return max(factor, math.expm1(high))


def detectable_alone(ratios: list[float], alpha: float = ALPHA, factor: float = RATIO_THRESHOLD) -> float | None:
    """The smallest slowdown one run's samples could reveal against a baseline as noisy
    as itself (stored in each entry as `detectable_slowdown`)."""
    x = np.log(np.asarray([r for r in ratios if r > 0]))
    return detectable(x, x, alpha, factor) if len(x) >= 3 else None


@dataclass(frozen=True)
class Speed:
    """The speed decision on one matched pair, with its evidence."""

    measure: str  # "time" (with samples), "time, no samples" or "instructions"
    before: float  # median ratio to the builtin, or instructions per call
    after: float
    change: float  # estimated relative change (Hodges-Lehmann for samples)
    low: float | None = None  # CI_LEVEL confidence interval of the change
    high: float | None = None
    p_slower: float | None = None  # one-sided Mann-Whitney p-values
    p_faster: float | None = None
    detectable: float | None = None  # the smallest slowdown this comparison could flag
    threshold: float = 0.0  # the effect size (or relative change) a regression needs
    alpha: float | None = None

    @property
    def slower(self) -> bool:
        if self.p_slower is not None:
            return self.change > self.threshold and self.p_slower < self.alpha
        return self.change > self.threshold

    @property
    def faster(self) -> bool:
        """As large and as significant the other way (the reverse comparison would flag it)."""
        reverse = 1.0 / (1.0 + self.change) - 1.0
        if self.p_faster is not None:
            return reverse > self.threshold and self.p_faster < self.alpha
        return reverse > self.threshold

    def why(self) -> str:
        """The decision's reason, in words."""
        size = f"{self.change:+.1%}"
        if self.low is not None:
            size += f" [{self.low:+.1%}, {self.high:+.1%}]"
        if self.measure == "time":
            sig = f"p={self.p_slower:.2g}" if self.p_slower >= 1e-4 else "p<1e-4"
            verdict = ("slower" if self.slower else "faster" if self.faster else "within noise")
            detect = "" if self.detectable is None else (
                "; could detect " + ("nothing: too few rounds" if math.isinf(self.detectable)
                                     else f"+{self.detectable:.0%}"))
            rule = f"needs > +{self.threshold:.0%} and p < {self.alpha:g}"
            return f"{verdict}: {size}, {sig} ({rule}){detect}"
        what = "instructions" if self.measure == "instructions" else "median time/builtin (no samples)"
        verdict = "slower" if self.slower else "faster" if self.faster else "within noise"
        return f"{verdict}: {what} {size} (needs > +{self.threshold:.0%})"


def speed_of(prev: dict, cur: dict, limits: Thresholds) -> Speed | None:
    m0, m1 = measure_of(prev), measure_of(cur)
    if m0 != m1:
        return None  # never compared across measures
    if m1 == "instructions":
        i0, i1 = number(prev.get("instructions")), number(cur.get("instructions"))
        if not i0 or i1 is None:
            return None
        return Speed("instructions", i0, i1, i1 / i0 - 1.0, threshold=limits.instructions)
    r0, r1 = number(prev.get("ratio_to_builtin")), number(cur.get("ratio_to_builtin"))
    s0, s1 = samples_of(prev), samples_of(cur)
    if s0 is None or s1 is None:
        if not r0 or not r1 or r0 == r1 == 1.0:  # 1.0 exactly on both sides: the builtin itself
            return None
        return Speed("time, no samples", r0, r1, r1 / r0 - 1.0, threshold=limits.no_samples_ratio)
    x, y = np.log(s1), np.log(s0)
    quotients = np.sort(np.subtract.outer(x, y).ravel())
    n, m = len(x), len(y)
    # distribution-free CI of the shift: order statistics of the pairwise differences
    z = stats.norm.ppf(0.5 + CI_LEVEL / 2)
    c = max(0, int(math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))))
    return Speed("time", float(np.median(s0)), float(np.median(s1)),
                 math.expm1(float(np.median(quotients))),
                 low=math.expm1(float(quotients[c])), high=math.expm1(float(quotients[n * m - 1 - c])),
                 p_slower=_p_greater(x, y), p_faster=_p_greater(y, x),
                 detectable=detectable(x, y, limits.alpha, limits.ratio),
                 threshold=limits.ratio, alpha=limits.alpha)


def measure_of(entry: dict) -> str:
    """How an entry's speed was measured: "time" (older files too) or "instructions"."""
    return "instructions" if entry.get("measure") == "instructions" else "time"


__all__ = ["ALPHA", "CALIBRATION", "CI_LEVEL", "GATE", "INSTRUCTION_THRESHOLD", "MAX_SAMPLES",
           "MEMORY_THRESHOLD", "NO_SAMPLES_RATIO_THRESHOLD", "RATIO_THRESHOLD", "RULE", "SAMPLES",
           "Speed", "Thresholds", "detectable", "detectable_alone", "measure_of", "number",
           "samples_of", "speed_of", "thin", "thresholds_of"]
