"""One configuration of a check (a Case) and the deterministic inputs it stands for.

A case's inputs are a pure function of its fields and the run seed, so a node id is a
complete repro. Logits are drawn in float64, rounded to the case dtype, and the reference
sees exactly the rounded values the implementation sees.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

import numpy as np

import reference
from lsuite.inputs import kernel_cases as kc
from lsuite.inputs.adversarial import (
    CONFIDENT_MISSES,
    LOGIT_KINDS,
    MASKED_SHARE,
    adversarial_logits,
)
from lsuite.record import claims
from lsuite.record.records import DEVICES, DTYPES, REDUCTIONS, Impl

LAYOUTS = ("2d", "nd", "unbatched")
IGNORES = ("none", "negative", "in_range", "all", "zero")  # zero: ignore_index=0, a real class
WEIGHTS = ("none", "random", "zeros", "zero_total")  # zero_total: every target's class weighs 0
TARGETS = ("index", "probs")
BIASES = ("none", "random")  # hidden_states: no bias passed, or a (K,) bias

NEGATIVE_IGNORE = -100  # PyTorch's default ignore_index
IN_RANGE_IGNORE = 1  # a real class used as padding, like OpenNMT's pad index
ND_SPATIAL = (3, 2)  # (d1, d2) of the N-D layout
LOGIT_SCALE = 3.0  # std of the logits: confident enough that rounding matters in half precision


@dataclass(frozen=True)
class Case:
    """One point of the check space. Axes a test does not vary keep these defaults."""

    device: str = "cpu"
    dtype: str = "float64"
    reduction: str = "mean"
    eps: float = 0.1
    K: int = 11
    N: int = 16
    layout: str = "2d"
    ignore: str = "none"
    weight: str = "none"
    targets: str = "index"
    logits: str = "ordinary"  # the logit kind (lsuite/inputs/adversarial.py)
    # 1 - p(true class) of every row of a `confident` case (lsuite/inputs/adversarial.py)
    miss: float = CONFIDENT_MISSES[-1]
    H: int = 16  # hidden_states: the hidden size of h (N, H) and W (K, H)
    bias: str = "none"  # hidden_states: BIASES (a masked case puts -inf into the bias)
    world: int = 1  # vocab_parallel: ranks the classes are split across
    # where real kernels break (lsuite/inputs/kernel_cases.py): the upstream gradient, the class
    # block whose partial tail holds targets and maxima (0: none), the ignored rows' spread
    upstream: str = "default"
    block: int = 0
    spread: str = "even"

    def __post_init__(self) -> None:
        """A typo must not silently become an ordinary case. eps is any finite number: the
        argument checks pass values outside [0, 1] on purpose."""
        bad = [f"{name}={getattr(self, name)!r} is not one of {allowed}" for name, allowed in (
            ("device", DEVICES), ("dtype", DTYPES), ("reduction", REDUCTIONS), ("layout", LAYOUTS),
            ("ignore", IGNORES), ("weight", WEIGHTS), ("targets", TARGETS), ("logits", LOGIT_KINDS),
            ("bias", BIASES), ("upstream", kc.UPSTREAMS), ("spread", kc.SPREADS),
        ) if getattr(self, name) not in allowed]
        for name, low in (("K", 1), ("N", 0), ("H", 1), ("world", 1), ("block", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                bad.append(f"{name}={value!r} must be an int >= {low}")
        if not isinstance(self.eps, int | float) or not np.isfinite(self.eps):
            bad.append(f"eps={self.eps!r} must be a finite number")
        if isinstance(self.miss, bool) or not isinstance(self.miss, int | float) or not 0 < self.miss < 1:
            bad.append(f"miss={self.miss!r} must be a number in (0, 1)")
        if bad:
            raise ValueError("Case: " + "; ".join(bad))

    def replace(self, **changes) -> Case:
        return dataclasses.replace(self, **changes)

    def params(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def passed_ignore_index(self) -> int | None:
        """The ignore_index handed to the implementation (None: not passed)."""
        return {"none": None, "negative": NEGATIVE_IGNORE, "in_range": IN_RANGE_IGNORE,
                "all": NEGATIVE_IGNORE, "zero": 0}[self.ignore]

    def effective_ignore_index(self, impl: Impl) -> int | None:
        passed = self.passed_ignore_index
        return impl.default_ignore_index if passed is None else passed


def supports(impl: Impl, case: Case) -> str | None:
    """None if the implementation claims to support the case, else why not."""
    if case.dtype not in impl.dtypes:
        return f"dtype {case.dtype}"
    if case.device not in impl.devices:
        return f"device {case.device}"
    if case.reduction not in impl.reductions:
        return f"reduction {case.reduction!r}"
    if not impl.supports_eps(case.eps):
        return f"eps={case.eps}"
    if case.ignore != "none" and not impl.ignore_index:
        return "ignore_index"
    if case.ignore != "none" and (why := claims.unsupported_ignore(impl, case.ignore)):
        return why
    if case.weight != "none" and not impl.weights:
        return "class weights"
    if case.weight == "none" and impl.requires_weights:
        return "running without class weights (the recipe always passes them)"
    if case.targets == "probs" and not impl.prob_targets:
        return "probability targets"
    if case.layout == "nd" and not impl.nd:
        return "N-D input"
    if case.layout == "unbatched" and not impl.unbatched:
        return "unbatched input"
    if case.targets == "probs" and case.ignore != "none":
        return "ignore_index with probability targets (PyTorch rejects it)"
    if case.ignore in ("in_range", "zero") and case.K <= IN_RANGE_IGNORE:
        return "in-range ignore_index needs K > 1"
    if (why := kc.why_not(case)) is not None:
        return why
    if case.K < 2 and impl.convention in ("exclusive", "padding_excluded") and case.eps > 0:
        return "K = 1 with eps > 0: there is no other class to smooth onto"
    if impl.convention == "padding_excluded" and case.eps > 0 and case.K <= 2 \
            and _padding_column(impl, case) is not None:
        return "K <= 2 with a padding column and eps > 0: no class is left for the smoothing mass"
    return None


def shard_bounds(K: int, world: int) -> list[tuple[int, int]]:
    """Each rank's columns [start, stop): the first K % world ranks hold one more."""
    sizes = [K // world + (r < K % world) for r in range(world)]
    starts = np.cumsum([0, *sizes])
    return [(int(starts[r]), int(starts[r + 1])) for r in range(world)]


def default_case(impl: Impl) -> Case:
    """The base case for an implementation: float64 (else its first dtype: a record that
    refuses float64 still gets every check that does not vary the dtype), its first
    reduction, its smallest default eps."""
    eps = 0.1 if impl.supports_eps(0.1) else impl.eps_max
    reduction = "mean" if "mean" in impl.reductions else impl.reductions[0]
    dtype = "float64" if "float64" in impl.dtypes else impl.dtypes[0]
    return Case(dtype=dtype, reduction=reduction, eps=eps,
                weight="random" if impl.requires_weights else "none")


@dataclass(frozen=True)
class Inputs:
    """Everything a check feeds the implementation and the reference, as float64 NumPy."""

    logits: np.ndarray  # float64, already rounded to the case dtype
    target: np.ndarray  # int64 class indices or float64 probabilities (rounded to dtype)
    weight: np.ndarray | None  # float64 (K,), rounded to dtype
    cotangent: np.ndarray | None  # upstream gradient for reduction "none", rounded to dtype
    ignore_index: int | None  # what the reference treats as ignored
    spec: reference.Spec
    upstream: float | None = None  # a reduced loss's upstream gradient (None: 1.0)

    @property
    def leaves(self) -> dict[str, np.ndarray]:
        """The arrays the implementation is differentiated with respect to, by name."""
        return {"logits": self.logits}


def round_to(array: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 values to a torch dtype and back (bfloat16 via torch)."""
    import torch

    array = np.asarray(array, dtype=np.float64)
    rounded = torch.from_numpy(array.copy()).to(getattr(torch, dtype)).double().numpy()
    return rounded.reshape(array.shape)


def case_seed(case: Case, run_seed: int) -> int:
    """A stable per-case seed: the same case always draws the same inputs."""
    fields = case.params()
    fields.pop("device")  # cpu and cuda see identical inputs
    for name in ("miss", "H", "bias", "world", "upstream", "block", "spread"):  # added later:
        # earlier cases keep their inputs
        if fields[name] == getattr(Case, name):
            fields.pop(name)
    return zlib.crc32(repr(sorted(fields.items())).encode()) ^ run_seed


def shapes(case: Case) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(logits shape, class-index target shape)."""
    if case.layout == "unbatched":
        return (case.K,), ()
    if case.layout == "nd":
        return (case.N, case.K, *ND_SPATIAL), (case.N, *ND_SPATIAL)
    return (case.N, case.K), (case.N,)


def _padding_column(impl: Impl, case: Case) -> int | None:
    """The class the padding_excluded convention gives no mass (the in-range ignore_index of
    a record whose padding column is its ignore_index), or None."""
    ignore_index = case.effective_ignore_index(impl)
    if impl.pad_index_is_ignore_index and ignore_index is not None and 0 <= ignore_index < case.K:
        return ignore_index
    return None


def spec_for(impl: Impl, case: Case) -> reference.Spec:
    ignore_index = case.effective_ignore_index(impl)
    pad = _padding_column(impl, case)
    return reference.Spec(
        convention=impl.convention, form=impl.form, eps=case.eps, reduction=case.reduction,
        ignore_index=ignore_index if case.targets == "index" else None, pad_index=pad,
        targets=case.targets,
    )


def make_inputs(impl: Impl, case: Case, run_seed: int = 0) -> Inputs:
    rng = np.random.default_rng(case_seed(case, run_seed))
    logits_shape, target_shape = shapes(case)
    raw_logits = rng.standard_normal(logits_shape) * LOGIT_SCALE
    if case.targets == "probs":
        class_axis = 0 if case.layout == "unbatched" else 1
        raw = rng.gamma(1.0, size=logits_shape)
        target = round_to(raw / raw.sum(axis=class_axis, keepdims=True), case.dtype)
    else:
        target = _class_targets(case, target_shape, rng)
    if case.block:  # the largest logit of every row in the tail block (lsuite/inputs/kernel_cases.py)
        raw_logits = kc.max_in_tail(raw_logits, case.block, rng)
    logits = round_to(styled_logits(case, raw_logits, target, rng), case.dtype)
    weight = _class_weight(case, target, rng)
    if case.block and weight is not None:
        weight = round_to(kc.blockwise_weight(weight, case.block), case.dtype)
    upstream = None
    if case.upstream == "scaled":
        upstream = float(round_to(np.asarray(kc.scalar_upstream(rng)), case.dtype))
    cotangent = None
    if case.reduction == "none":
        out_shape = logits_shape if impl.form == "bce" else (
            target_shape if case.targets == "index" else _rows_shape(case))
        cotangent = round_to(rng.standard_normal(out_shape), case.dtype)
    spec = spec_for(impl, case)
    return Inputs(logits, np.asarray(target), weight, cotangent, spec.ignore_index, spec, upstream)


def _class_targets(case: Case, target_shape, rng) -> np.ndarray:
    target = rng.integers(0, case.K, size=target_shape)
    if case.block:
        target = kc.tail_targets(case.K, case.block, target_shape, rng)
    passed = case.passed_ignore_index
    if case.ignore == "all":
        target = np.full(target_shape, passed, dtype=np.int64)
    elif passed is not None:
        hit = kc.uneven_hits(target_shape, rng) if case.spread == "uneven" else \
            rng.random(target_shape) < 0.25
        if target.ndim == 0:
            hit = np.asarray(False)
        target = np.where(hit, passed, target).astype(np.int64)
    return target


def _class_weight(case: Case, target, rng) -> np.ndarray | None:
    weight = None
    if case.weight != "none":
        weight = rng.uniform(0.2, 2.0, size=case.K)
        if case.weight == "zeros":  # a third of the classes, the first one always
            weight[rng.random(case.K) < 1 / 3] = 0.0
            weight[0] = 0.0
        elif case.weight == "zero_total":  # Σ w_y = 0 while the smoothing term is not 0
            targets = np.asarray(target).reshape(-1)
            weight[targets[(targets >= 0) & (targets < case.K)]] = 0.0
            if not weight.any():
                weight[:] = 0.0  # K = 1: nothing else to weigh; the mean is 0/0 anyway
        weight = round_to(weight, case.dtype)
    return weight


def styled_logits(case: Case, logits: np.ndarray, target: np.ndarray, rng) -> np.ndarray:
    """The case's logit kind applied to ordinary logits (lsuite/inputs/adversarial.py), with the
    fixed parameters of a case: its miss (the most confident one unless the case names
    another), the full magnitude, a seeded mask."""
    if case.logits == "ordinary":
        return logits
    class_axis = 0 if logits.ndim == 1 else 1
    rows = np.moveaxis(logits, class_axis, -1)  # (..., K)
    if case.targets == "index":
        hits = np.where((target >= 0) & (target < case.K), target, 0)
        is_target = np.arange(case.K) == hits[..., None]
    else:
        is_target = np.moveaxis(target, class_axis, -1) == np.max(target, axis=class_axis)[..., None]
    mask = rng.random(rows.shape) < MASKED_SHARE if case.logits == "masked" else None
    unit = rows / LOGIT_SCALE if case.logits == "extreme" else rows
    shaped = adversarial_logits(case.logits, unit, is_target, miss=case.miss, mask=mask)
    return np.moveaxis(shaped, -1, class_axis)


def _rows_shape(case: Case) -> tuple[int, ...]:
    return shapes(case)[1]


# ----------------------------------------------------------------- hidden states (fused linear)

LARGE_NORM = 300.0  # `extreme` hidden states: |z| in the thousands (float16 holds 65504)
CONFIDENT_MARGIN_STEPS = 3  # corrections of h along W[y] that make each row confident


@dataclass(frozen=True)
class LinearInputs:
    """What a hidden-states check feeds: h (N, H), W (K, H), b (K,) or None, rounded to the
    case dtype, with the class-index target, class weights, cotangent and Spec of `Inputs`."""

    hidden: np.ndarray
    classifier: np.ndarray
    bias: np.ndarray | None
    target: np.ndarray
    weight: np.ndarray | None
    cotangent: np.ndarray | None
    ignore_index: int | None
    spec: reference.Spec
    upstream: float | None = None  # a reduced loss's upstream gradient (None: 1.0)

    @property
    def leaves(self) -> dict[str, np.ndarray | None]:
        """The arrays the implementation is differentiated with respect to, by name."""
        return {"hidden": self.hidden, "classifier": self.classifier, "bias": self.bias}

    @property
    def logits(self) -> np.ndarray:
        """z = h·Wᵀ + b in float64 (small cases only: budgets and PyTorch's own error)."""
        z = self.hidden @ self.classifier.T
        return z if self.bias is None else z + self.bias


def make_linear_inputs(impl: Impl, case: Case, run_seed: int = 0) -> LinearInputs:
    """Seeded h, W, b for a hidden-states case; its logit kind shapes them: `confident` moves
    each row of h along W[y] until p(y) is about 1 - miss, `extreme` scales h to large norms,
    `masked` puts -inf into the bias of a share of the classes no row targets."""
    rng = np.random.default_rng(case_seed(case, run_seed))
    target = _class_targets(case, (case.N,), rng)
    hidden = rng.standard_normal((case.N, case.H))
    classifier = rng.standard_normal((case.K, case.H)) * (LOGIT_SCALE / np.sqrt(case.H))
    bias = rng.standard_normal(case.K) if case.bias != "none" else None
    kept = (target >= 0) & (target < case.K)
    if case.logits == "extreme":
        hidden = hidden * LARGE_NORM
    elif case.logits == "confident":
        toward = classifier[np.where(kept, target, 0)]
        toward = toward / np.sum(toward ** 2, axis=1, keepdims=True)
        for _ in range(CONFIDENT_MARGIN_STEPS):
            z = hidden @ classifier.T + (0 if bias is None else bias)
            z_y = np.take_along_axis(z, np.where(kept, target, 0)[:, None], 1)[:, 0]
            others = np.where(np.arange(case.K) == np.where(kept, target, 0)[:, None], -np.inf, z)
            need = np.logaddexp.reduce(others, axis=1) + np.log((1 - case.miss) / case.miss) - z_y
            hidden = hidden + np.where(kept, need, 0.0)[:, None] * toward
    elif case.logits == "masked" and bias is not None:
        mask = rng.random(case.K) < MASKED_SHARE
        mask[target[kept]] = False
        bias = np.where(mask, -np.inf, bias)
    weight = _class_weight(case, target, rng)
    cotangent = round_to(rng.standard_normal(case.N), case.dtype) if case.reduction == "none" else None
    spec = spec_for(impl, case)
    return LinearInputs(round_to(hidden, case.dtype), round_to(classifier, case.dtype),
                        None if bias is None else round_to(bias, case.dtype), np.asarray(target),
                        weight, cotangent, spec.ignore_index, spec)
