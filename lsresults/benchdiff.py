"""Benchmarks of two runs: which entries match, and which changes are regressions.

The one home of that decision. The gate (lsuite/benchmarking/regression.py: the exit status of a
benchmark run against --ls-baseline) and the report's regression section
(reports/compare.py) both call `diff`, so they decide the same way for the same pair of
files. No torch, nothing of lsuite: NumPy and SciPy only. The thresholds and the
statistics of one pair live in lsresults/benchstats.py; their names are re-exported here.

Entries are matched by KEY (and never across measures). The key names what the loss was
called on (`input`: logits, hidden states or a vocab-parallel shard; absent means logits,
so files written before these kinds existed still match) and, for those inputs, the hidden
size and the world and rank: a fused linear entry never meets a logits entry of the same
n and k. A run that benchmarks records the
thresholds it judged with in results.json under GATE (see docs/results-schema.md);
`thresholds_of` reads them back, so a report compares two files with the thresholds the
run itself used (the calibrated defaults: lsresults/benchstats.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .benchstats import (
    ALPHA,
    CALIBRATION,
    CI_LEVEL,
    GATE,
    INSTRUCTION_THRESHOLD,
    MAX_SAMPLES,
    MEMORY_THRESHOLD,
    NO_SAMPLES_RATIO_THRESHOLD,
    RATIO_THRESHOLD,
    RULE,
    SAMPLES,
    Speed,
    Thresholds,
    detectable,
    detectable_alone,
    measure_of,
    number,
    samples_of,
    speed_of,
    thin,
    thresholds_of,
)
from .inputs import LOGITS

# The input's parts come after the implementation and the shape stays last (key[-1] is k).
KEY = ("impl", "input", "hidden_size", "world", "rank", "device", "dtype", "pass", "n", "k")


def key_of(entry: dict) -> tuple:
    """KEY's values (`input` "logits" when absent); a value of an odd type is kept as its repr."""
    def part(name: str):
        value = entry.get(name)
        if value is None:
            return LOGITS if name == "input" else None
        return value if isinstance(value, str | int | float) else repr(value)

    return tuple(part(name) for name in KEY)


def input_label(item: dict | tuple) -> str:
    """What an entry (or key) was called on, in words: "logits", "hidden_states H=512",
    "vocab_parallel world=2 rank=1"."""
    key = item if isinstance(item, tuple) else key_of(item)
    parts = dict(zip(KEY, key, strict=True))
    words = [str(parts["input"])]
    if parts["hidden_size"] is not None:
        words.append(f"H={parts['hidden_size']}")
    if parts["world"] is not None:
        words.append(f"world={parts['world']}")
    if parts["rank"] is not None:
        words.append(f"rank={parts['rank']}")
    return " ".join(words)


def describe_key(key: tuple) -> str:
    """A key in words: "impl device dtype pass n=.. k=..", then the input when not logits."""
    parts = dict(zip(KEY, key, strict=True))
    text = " ".join(str(parts[name]) for name in ("impl", "device", "dtype", "pass"))
    text += f" n={parts['n']} k={parts['k']}"
    label = input_label(key)
    return text if label == LOGITS else f"{text} {label}"


# ------------------------------------------------------------------ the decision


@dataclass(frozen=True)
class BenchRegression:
    """One regression: the gate fails on it, the report lists it."""

    key: tuple  # KEY's values
    quantity: str  # "ratio_to_builtin", "instructions" or "peak_over_logits"
    before: float
    after: float
    threshold: float
    why: str = ""  # the decision's evidence (speed: the change, its interval, p)

    @property
    def change(self) -> float:
        """Relative change for speed, absolute (logits sizes) for memory."""
        if self.quantity == "peak_over_logits":
            return self.after - self.before
        return self.after / self.before - 1.0

    def message(self) -> str:
        where = describe_key(self.key)
        if self.quantity == "ratio_to_builtin":
            return f"{where}: time / builtin {self.before:.2f} -> {self.after:.2f}, {self.why}"
        if self.quantity == "instructions":
            return f"{where}: instructions {self.before:.4g} -> {self.after:.4g}, {self.why}"
        return (f"{where}: peak memory / logits {self.before:.2f} -> {self.after:.2f} "
                f"({self.change:+.2f} logits sizes, threshold +{self.threshold:g})")

    def record(self) -> dict:
        return {**dict(zip(KEY, self.key, strict=True)), "quantity": self.quantity,
                "before": self.before, "after": self.after, "change": self.change,
                "threshold": self.threshold, "message": self.message()}


@dataclass(frozen=True)
class Pair:
    """A benchmark present in both runs, with what was decided about it."""

    key: tuple
    speed: Speed | None  # None: no comparable speed (the builtin's own ratio, mixed measures)
    peak_before: float | None
    peak_after: float | None
    median_before: float | None
    median_after: float | None
    memory_threshold: float

    @property
    def input_label(self) -> str:
        return input_label(self.key)

    @property
    def columns(self) -> tuple:
        """What the regression tables show of the key: impl, device, dtype, pass, n, k, and
        the input in words."""
        parts = dict(zip(KEY, self.key, strict=True))
        return (*(parts[name] for name in ("impl", "device", "dtype", "pass", "n", "k")), self.input_label)

    @property
    def ratio_before(self) -> float | None:
        return None if self.speed is None else self.speed.before

    @property
    def ratio_after(self) -> float | None:
        return None if self.speed is None else self.speed.after

    @property
    def ratio_change(self) -> float | None:
        return None if self.speed is None else self.speed.change

    @property
    def slower(self) -> bool:  # a regression
        return self.speed is not None and self.speed.slower

    @property
    def faster(self) -> bool:  # the reverse comparison would be a regression
        return self.speed is not None and self.speed.faster

    @property
    def memory_change(self) -> float | None:
        if self.peak_before is None or self.peak_after is None:
            return None
        return self.peak_after - self.peak_before

    @property
    def more_memory(self) -> bool:  # a regression
        return self.memory_change is not None and self.memory_change > self.memory_threshold

    @property
    def less_memory(self) -> bool:
        return self.memory_change is not None and -self.memory_change > self.memory_threshold

    @property
    def regressed(self) -> bool:
        return self.slower or self.more_memory

    @property
    def label(self) -> str:
        parts = [word for flag, word in ((self.slower, "slower"), (self.more_memory, "more memory"),
                                         (self.faster, "faster"), (self.less_memory, "less memory"))
                 if flag]
        if not parts:
            return "within noise"
        return ("regression: " if self.regressed else "") + ", ".join(parts)

    def why(self) -> str:
        """Why the pair was judged as it was: speed and memory, each with its rule."""
        parts = [] if self.speed is None else [self.speed.why()]
        if self.memory_change is not None:
            parts.append(f"peak {self.memory_change:+.2f} logits (needs > +{self.memory_threshold:g})")
        return "; ".join(parts)


@dataclass
class BenchDiff:
    thresholds: Thresholds
    pairs: list[Pair] = field(default_factory=list)  # every benchmark present in both runs
    findings: list[BenchRegression] = field(default_factory=list)  # the regressions, in run order
    added: int = 0
    removed: int = 0


def _pair(key: tuple, prev: dict, cur: dict, limits: Thresholds) -> Pair:
    return Pair(key, speed_of(prev, cur, limits),
                number(prev.get("peak_over_logits")), number(cur.get("peak_over_logits")),
                number(prev.get("median_s")), number(cur.get("median_s")),
                memory_threshold=limits.memory)


def diff(baseline: list, current: list, thresholds: Thresholds | None = None) -> BenchDiff:
    """Match the benchmark entries of two runs and judge each pair. Entries without a
    comparable quantity (the reference, the no-op) or absent from one run are counted as
    added/removed or left out, never flagged."""
    limits = thresholds or Thresholds()
    old = {key_of(e): e for e in baseline or () if isinstance(e, dict)}
    new = {key_of(e): e for e in current or () if isinstance(e, dict)}
    out = BenchDiff(limits, added=sum(1 for k in new if k not in old),
                    removed=sum(1 for k in old if k not in new))
    for key, cur in new.items():
        if key not in old:
            continue
        pair = _pair(key, old[key], cur, limits)
        if pair.speed is None and pair.memory_change is None:
            continue
        out.pairs.append(pair)
        if pair.slower:
            speed = pair.speed
            quantity = "instructions" if speed.measure == "instructions" else "ratio_to_builtin"
            out.findings.append(BenchRegression(key, quantity, speed.before, speed.after,
                                                speed.threshold, speed.why()))
        if pair.more_memory:
            out.findings.append(BenchRegression(key, "peak_over_logits", pair.peak_before,
                                                pair.peak_after, limits.memory))
    return out


def spread(runs: list[list[dict]], quantity: str = "ratio_to_builtin") -> dict[tuple, float]:
    """Per benchmark, max/min - 1 of `quantity` across runs of the same commit: the noise
    the thresholds are calibrated from (python -m lsuite.benchmarking.regression A.json B.json ...)."""
    values: dict[tuple, list[float]] = {}
    for run in runs:
        for entry in run:
            value = number(entry.get(quantity)) if isinstance(entry, dict) else None
            if value:
                values.setdefault(key_of(entry), []).append(value)
    return {key: max(v) / min(v) - 1.0 for key, v in values.items() if len(v) == len(runs) > 1}


__all__ = ["ALPHA", "CALIBRATION", "CI_LEVEL", "GATE", "INSTRUCTION_THRESHOLD", "KEY", "MAX_SAMPLES",
           "MEMORY_THRESHOLD", "NO_SAMPLES_RATIO_THRESHOLD", "RATIO_THRESHOLD", "RULE", "SAMPLES",
           "BenchDiff", "BenchRegression", "Pair", "Speed", "Thresholds", "describe_key", "detectable",
           "detectable_alone", "diff", "input_label", "key_of", "measure_of", "number", "samples_of",
           "speed_of", "spread", "thin", "thresholds_of"]
