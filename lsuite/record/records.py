"""The record of one implementation under test, and what building it receives.

Tests read these fields, never implementation names (declare, don't branch).
Each field says which part of the suite reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lsresults.inputs import HIDDEN, LOG_PROBS, LOGITS, LOGITS_INPUTS, VOCAB_PARALLEL
from lsuite.record.predicate import Predicate
from reference.spec import CONVENTIONS, FORMS, REDUCTIONS

__all__ = ["BuildConfig", "Impl", "KnownDefect", "CHECK_KINDS", "CLASS_DIMS", "COMPUTES_IN",
           "CONVENTIONS", "DEVICES", "DTYPES", "EMPTY_MEANS", "FORMS", "IGNORE_INDICES", "INPUTS",
           "OUTPUT_DTYPES", "REDUCTIONS", "LOGITS_INPUTS", "WORLD_SIZES"]

DTYPES = ("float64", "float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda")
# What the implementation is called on (docs/input-kinds.md): the logits,
# their log_softmax, hidden states and a classifier (fused linear: loss_fn(h, W, target, bias)),
# or its rank's columns of the logits inside a torch.distributed group (vocab-parallel).
INPUTS = (LOGITS, LOG_PROBS, HIDDEN, VOCAB_PARALLEL)  # their names: lsresults/inputs.py
# LOGITS_INPUTS (lsresults/inputs.py): the inputs the logits checks are generated for
WORLD_SIZES = (1, 2, 4)  # the distributed runner's world sizes (lsuite/running/distributed.py)
CLASS_DIMS = ("1", "last")  # classes on dim 1 as nn.CrossEntropyLoss, or on the last dim (B, T, V)
# The dtype of the returned loss: the logits', always float32, or float32 for bfloat16/float16
# logits and the logits' otherwise (HF LabelSmoother, torch.autocast; docs/specification.md §8).
OUTPUT_DTYPES = ("input", "float32", "at_least_float32")
IGNORE_INDICES = ("negative", "in_range")  # an ignore_index of -100, or a real class (1)
EMPTY_MEANS = ("nan", "zero")  # a mean over nothing: NaN as PyTorch, or 0 (Liger, Keras; §6)
COMPUTES_IN = (None, "float32")  # None: in the logits' dtype
# What a check compares (its `ls_kind` marker): the float64 reference, the implementation
# with itself on transformed inputs, or its handling of bad arguments.
CHECK_KINDS = ("reference", "invariant", "argument")


@dataclass(frozen=True)
class BuildConfig:
    """What `Impl.build` receives for one check."""

    eps: float  # smoothing strength
    reduction: str  # one of the record's `reductions`
    num_classes: int  # K
    device: str  # "cpu" or "cuda"
    dtype: Any  # torch dtype of the logits
    weight: Any = None  # torch tensor (K,) on `device` in `dtype`, or None: do not pass weights
    ignore_index: int | None = None  # None: do not pass it (the implementation's default holds)
    hidden_size: int = 0  # hidden_states: H of h (N, H) and W (K, H); 0 otherwise
    world: int = 1  # vocab_parallel: ranks of the group; num_classes stays the global K
    rank: int = 0  # vocab_parallel: this rank; it holds columns vocab_range of the logits
    vocab_range: tuple[int, int] | None = None  # vocab_parallel: [start, stop) of this rank's columns
    group: Any = None  # vocab_parallel: the torch.distributed process group (the default group)


@dataclass(frozen=True)
class KnownDefect:
    """A declared, reasoned failure: the checks it covers become strict xfails.

    It covers a check when the check's name is in `checks` or its kind in `kinds` (both
    empty: every check), and the case satisfies `when`. A check name that matches no check
    of the suite is warned about at collection (plugin)."""

    reason: str  # why it fails; shown in the xfail, the results and the report
    checks: tuple[str, ...] = ()  # names of the checks it covers (test function without test_)
    kinds: tuple[str, ...] = ()  # kinds of checks it covers (CHECK_KINDS)
    when: Predicate | Callable[[Any], bool] | None = None  # on the Case; None: every case

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in CHECK_KINDS]
        if bad:
            raise ValueError(f"KnownDefect kinds {bad} are not among {CHECK_KINDS}")
        if isinstance(self.checks, str) or isinstance(self.kinds, str):
            raise ValueError("KnownDefect checks and kinds are tuples of names, not a string")

    @property
    def when_text(self) -> str:
        """The predicate in words (generated from it, never written beside it)."""
        if self.when is None:
            return "always"
        if isinstance(self.when, Predicate):
            return str(self.when)
        doc = (getattr(self.when, "__doc__", None) or "").strip().splitlines()
        return doc[0] if doc else f"where {getattr(self.when, '__qualname__', 'a custom predicate')}() holds"

    def covers(self, check: str, kind: str, case: Any) -> bool:
        scoped = bool(self.checks or self.kinds)
        if scoped and check not in self.checks and kind not in self.kinds:
            return False
        return self.when is None or bool(self.when(case))


@dataclass(frozen=True)
class Impl:
    """One implementation under test: how to build it and what it claims.

    name, build, convention and form are required; every other field's default is
    PyTorch's behaviour (nn.CrossEntropyLoss), so a record states only where it differs.
    docs/plugging-in.md lists every field with what the suite does with it. A bad value
    raises one ValueError naming every problem.
    """

    name: str  # test ids, results, report
    build: Callable[[BuildConfig], Callable[..., Any]]  # runner: returns loss_fn(input, target)
    convention: str  # reference: the target distribution it claims (docs/specification.md §1)
    form: str  # reference: "ce", "kl" or "bce" (§2)
    description: str = ""  # --ls-list and the report
    origin: str = "builtin"  # "builtin" or the --ls-impl SPEC it came from (isolated subprocess checks)
    input: str = "logits"  # runner: "log_probs" means the runner applies log_softmax first
    class_dim: str = "1"  # runner (lsuite/record/claims.py): "last" means the runner moves the classes of
    # an N-D input to the last dim, (N, d1, d2, K) as in (B, T, V), before calling; 2-D is both
    output_dtype: str = "input"  # runner: the loss's dtype it claims (OUTPUT_DTYPES); any other fails
    computes_in: str | None = None  # harness, invariants (lsuite/record/claims.py): "float32" when it
    # computes in float32 whatever the input: float64 checks are held to float32's budgets;
    # --ls-list, results.json and the report say so
    reductions: tuple[str, ...] = ("none", "sum", "mean")  # case generation: the reduction axis;
    # checks that do not vary the reduction use "mean" if listed, else the first entry
    default_ignore_index: int | None = -100  # reference: what holds when no ignore_index is passed
    pad_index_is_ignore_index: bool = False  # reference (padding_excluded): the zero-mass padding
    # column is the effective ignore_index (passed, else default_ignore_index) when that is a
    # class in [0, K); a negative one gives no padding column (eps over K-1 classes)
    ignore_index: bool = True  # case generation: ignore axis (negative, in-range, all ignored)
    ignore_indices: tuple[str, ...] = IGNORE_INDICES  # case generation: which ignore_index values
    # it takes (IGNORE_INDICES); "all ignored" passes the negative one
    empty_mean: str = "nan"  # reference check, mean invariant (lsuite/record/claims.py): what a mean over
    # nothing (empty batch, every row ignored) returns: "nan" or "zero"; the gradient is 0 either way
    weights: bool = True  # case generation: class-weight axis
    requires_weights: bool = False  # case generation: every case passes class weights
    prob_targets: bool = False  # case generation: probability-target axis (PyTorch semantics, §4)
    nd: bool = True  # case generation: (N, K, d1, d2) layout, classes on dim 1
    unbatched: bool = True  # case generation: (K,) logits with a 0-d target
    dtypes: tuple[str, ...] = DTYPES  # case generation
    devices: tuple[str, ...] = DEVICES  # case generation
    eps_min: float = 0.0  # case generation: smallest supported smoothing
    eps_min_inclusive: bool = True  # case generation: False when eps == eps_min is rejected
    eps_max: float = 1.0  # case generation: largest supported smoothing
    eps_max_inclusive: bool = True  # case generation: False when eps == eps_max is rejected (timm: eps < 1)
    validates_arguments: bool = False  # suites/test_argument_errors.py: rejects eps outside [0, 1] and out-of-range targets
    rejects_with: tuple[type, ...] = ()  # suites/test_argument_errors.py: exception types
    # accepted as a rejection besides RuntimeError, IndexError, ValueError (e.g. AssertionError)
    mutates_input: bool = False  # runner: it writes into its input by design (Liger stores the
    # gradient in the logits): the runner passes a copy and still judges value and gradient;
    # without it, any change to an input fails the check as an accidental mutation
    triton: bool = False  # plugin (lsuite/catalogs/peers.py): Triton kernels: without CUDA they run under
    # TRITON_INTERPRET=1 (the suite sets it) on cases up to INTERPRETED_MAX_ELEMENTS only
    interpreter_cannot: tuple[str, ...] = ()  # plugin (lsuite/catalogs/peers.py): support fields (e.g.
    # "weights") or dtypes (e.g. "bfloat16") the Triton interpreter cannot run for it; turned off
    # (dropped from `dtypes`) when interpreted, with a note
    check_kinds: tuple[str, ...] = CHECK_KINDS  # plugin: the kinds of checks it runs; the others
    # skip with `check_kinds_reason` (a compiler whose every new eps is a new compilation)
    check_kinds_reason: str = ""
    time_factor: float = 1.0  # plugin/worker: --ls-timeout is multiplied by this for its checks
    # (a compiler whose first call on each new shape or eps compiles)
    requires: tuple[str, ...] = ()  # plugin: modules it needs; when one is absent every check of
    # the record skips with `install` as the reason
    install: str = ""  # the skip reason when a `requires` module is absent
    bias: bool = True  # case generation (hidden_states): the bias axis; False: never passes one
    worlds: tuple[int, ...] = WORLD_SIZES  # case generation (vocab_parallel): world sizes it runs at
    uneven_shards: bool = False  # case generation (vocab_parallel): a K not divisible by the
    # world size (the first K % world ranks hold one column more); False: such cases skip
    known_defects: tuple[KnownDefect, ...] = field(default=())  # plugin: strict xfails
    # an input kind of the record's own (an lsuite.kinds.kind.Kind whose name is `input`), for
    # a loss none of lsuite/kinds/ describes; None: the kind lsuite/kinds/ names `input`
    kind: Any = None

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            problems.append(f"name {self.name!r} must be non-empty letters, digits, '_' or '-'")
        if not callable(self.build):
            problems.append("build must be callable: BuildConfig -> loss_fn(input, target)")
        for value, allowed, what in (
            (self.convention, CONVENTIONS, "convention"),
            (self.form, FORMS, "form"),
            (self.input, INPUTS if self.kind is None else (getattr(self.kind, "name", None),), "input"),
            (self.class_dim, CLASS_DIMS, "class_dim"),
            (self.output_dtype, OUTPUT_DTYPES, "output_dtype"),
            (self.empty_mean, EMPTY_MEANS, "empty_mean"),
            (self.computes_in, COMPUTES_IN, "computes_in"),
        ):
            if value not in allowed:
                problems.append(f"{what} {value!r} is not one of {allowed}")
        for values, allowed, what in (
            (self.reductions, REDUCTIONS, "reductions"),
            (self.dtypes, DTYPES, "dtypes"),
            (self.devices, DEVICES, "devices"),
        ):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                problems.append(f"{what} {values!r} must be a non-empty subset of {allowed}")
        bad = [v for v in self.ignore_indices if v not in IGNORE_INDICES]
        if bad or (self.ignore_index and not self.ignore_indices):
            problems.append(f"ignore_indices {self.ignore_indices!r} must be a non-empty subset of {IGNORE_INDICES}")
        if not set(self.check_kinds) <= set(CHECK_KINDS) or not self.check_kinds:
            problems.append(f"check_kinds {self.check_kinds!r} must be a non-empty subset of {CHECK_KINDS}")
        bad = [f for f in self.interpreter_cannot
               if f not in DTYPES and not isinstance(getattr(self, f, None), bool)]
        if bad:
            problems.append(f"interpreter_cannot {bad} must name boolean support fields or dtypes")
        if (self.form == "bce") != self.convention.startswith("binary"):
            problems.append("form 'bce' goes with the binary conventions, and only with them")
        if self.input not in LOGITS_INPUTS and self.kind is None:
            flat = [f for f in ("nd", "unbatched", "prob_targets") if getattr(self, f)]
            if flat or self.form == "bce" or self.class_dim != "1":
                problems.append(f"input {self.input!r} takes (N, H) hidden states or (N, K/world) "
                                f"shards with class indices and a ce/kl form: set nd=False, "
                                f"unbatched=False, prob_targets=False (got {flat or self.form})")
        if not self.worlds or not set(self.worlds) <= set(WORLD_SIZES):
            problems.append(f"worlds {self.worlds!r} must be a non-empty subset of {WORLD_SIZES}")
        if not 0.0 <= self.eps_min <= self.eps_max <= 1.0:
            problems.append("need 0 <= eps_min <= eps_max <= 1")
        if problems:
            raise ValueError(f"Impl {self.name!r}: " + "; ".join(problems))

    def defect_for(self, check: str, kind: str, case: Any) -> KnownDefect | None:
        """The first declared defect covering this check (name and kind) and case, if any."""
        return next((d for d in self.known_defects if d.covers(check, kind, case)), None)

    def supports_eps(self, eps: float) -> bool:
        low_ok = eps > self.eps_min or (self.eps_min_inclusive and eps == self.eps_min)
        high_ok = eps < self.eps_max or (self.eps_max_inclusive and eps == self.eps_max)
        return low_ok and high_ok
