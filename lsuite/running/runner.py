"""The one way the suite runs an implementation under test.

`run` sends the call to the implementation's worker process (lsuite/running/worker.py) when the
check has one, so a crash, hang or global-state change there costs only that call;
`run_local` is what the worker (or an --ls-inprocess run) executes.

`run(ctx, feed)` builds the implementation for the check's case, turns NumPy inputs into
tensors, calls it, checks what came back (a tensor of the expected shape that depends on
the logits, no input changed in place) and takes the gradient with respect to the logits.
Every kind of check (reference comparisons, invariants, equivalences, argument checks) and
the benchmarks' workloads build and call through here, so a new kind of implementation is
supported in one place. Whatever the implementation does wrong becomes a `CheckFailed`
saying what it did, the claim it was held to, and the repro line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lsresults.text import clean_text
from lsuite.catalogs import triton_typing
from lsuite.inputs.cases import Case, shard_bounds
from lsuite.record import claims
from lsuite.record.records import BuildConfig, Impl
from lsuite.running import causes


class CheckFailed(AssertionError):
    """A failed check: the implementation misbehaved or disagreed with what it claims.
    `what` is the finding alone, without the claim and repro that Context.fail adds;
    `causes` what failed as data (lsuite/running/causes.py), empty when the site gave none."""

    def __init__(self, message: str, what: str | None = None, causes: list[dict] | None = None):
        super().__init__(message)
        self.what = message if what is None else what
        self.causes = list(causes or getattr(what, "causes", None) or ())


@dataclass(frozen=True)
class Context:
    """What a check knows while it runs one implementation on one case."""

    impl: Impl
    case: Case
    seed: int = 0  # the run's --ls-seed
    repro: str = ""  # appended to every failure message
    record: Callable[[dict], None] = lambda metrics: None  # receives the measured metrics
    detail: str | Callable[[], str] = ""  # appended to failure messages before the repro
    # (e.g. the drawn inputs as literals; a callable is only evaluated when a check fails)
    pool: Any = None  # lsuite.running.worker.Pool: run the implementation there; None: in this process
    deadline: float | None = None  # time.monotonic() by which the whole check must end
    check: str = ""  # the check's node id, for "not run: it hung in <check>"

    def _repr_pretty_(self, printer, cycle) -> None:
        """How Hypothesis prints the context in "Failing test case": the implementation's
        name and the case, not every field of the record, pool and deadline."""
        printer.text(f"Context(impl={self.impl.name!r}, case={self.case!r}, seed={self.seed!r})")

    def fail(self, what: str, kind: type[CheckFailed] | None = None,
             causes: list[dict] | None = None) -> CheckFailed:
        """The failure to raise: `what` with the claim, the detail and the repro line;
        `causes` (lsuite/running/causes.py) default to those `what` carries from a worker."""
        causes = list(causes or getattr(what, "causes", None) or ())
        impl, case = self.impl, self.case
        claim = (f"[{impl.name}: {impl.convention} {impl.form}, {case.device} {case.dtype} "
                 f"reduction={case.reduction} eps={case.eps} K={case.K} layout={case.layout} "
                 f"ignore={case.ignore} weight={case.weight} targets={case.targets}]")
        detail = self.detail() if callable(self.detail) else self.detail
        detail = f"\n{detail}" if detail else ""
        tail = f"\nrepro: {self.repro}" if self.repro else ""
        what = clean_text(what)
        return (kind or CheckFailed)(f"{what} {claim}{detail}{tail}", what, causes)


@dataclass(frozen=True)
class CallSpec:
    """How an input kind (lsuite/kinds/) calls a record, as plain data the runner interprets
    (it travels to the worker and the ranks by value): which named arrays become leaves
    (tensors the gradient is taken for), the record's positional arguments in order (leaf
    names and "target"), the BuildConfig fields taken from case fields, the leaf that holds
    class scores (fed as log-probabilities to a record that takes them, in the record's class
    layout), and the leaf split by columns across the ranks of a vocab-parallel group."""

    leaves: tuple[str, ...] = ("logits",)
    args: tuple[str, ...] = ("logits", "target")
    build: tuple[tuple[str, str], ...] = ()  # (BuildConfig field, Case field)
    scores: str | None = "logits"
    shard: str | None = None


@dataclass(frozen=True)
class Feed:
    """What one call receives, as float64/int64 NumPy arrays (rounded to the case dtype)."""

    leaves: dict  # name -> array (None: not passed), as the call spec names them
    target: np.ndarray  # int class indices, or probabilities when case.targets == "probs"
    weight: np.ndarray | None = None  # (K,) class weights; None: not passed
    cotangent: np.ndarray | None = None  # upstream gradient; None: ones like the output
    grad: bool = True  # False: call under torch.no_grad and take no gradient
    non_contiguous: bool = False  # feed a strided view of the first leaf
    expect_shape: tuple[int, ...] | None = None  # the output's shape; None: not checked
    strided_upstream: bool = False  # backpropagate the cotangent as a non-contiguous tensor
    call: CallSpec = CallSpec()  # how the record is called (the input kind's)

    @classmethod
    def of_logits(cls, logits, target, weight=None, **changes) -> Feed:
        """A feed for a record called on one logits tensor."""
        return cls({"logits": logits}, target, weight, **changes)

    @property
    def logits(self):
        return self.leaves.get("logits")


@dataclass(frozen=True)
class Outcome:
    value: np.ndarray  # the output in float64
    grad: np.ndarray | None  # the logits' gradient in float64 (this rank's columns); None
    # without grad or where the kind has no logits leaf
    notes: tuple[str, ...]  # problems that still allow comparison (output dtype, device),
    # each a causes.Explained carrying its cause
    grads: dict[str, np.ndarray] = field(default_factory=dict)  # every leaf's gradient by name
    dtype: str | None = None  # the output's dtype ("float32", ...)


def build(ctx: Context, weight, spec: CallSpec = CallSpec(), **shard) -> Callable:
    """The implementation's loss function for ctx.case, built by its record (`shard`: a
    vocab-parallel rank's world, rank, vocab_range and group)."""
    case = ctx.case
    extra = {name: getattr(case, field) for name, field in spec.build}
    cfg = BuildConfig(eps=case.eps, reduction=case.reduction, num_classes=case.K,
                      device=case.device, dtype=getattr(torch, case.dtype), weight=weight,
                      ignore_index=case.passed_ignore_index, **extra, **shard)
    try:
        loss_fn = ctx.impl.build(cfg)
    except Exception as exc:  # the implementation's own failure, reported as such
        raise ctx.fail(f"building it raised {type(exc).__name__}: {exc}",
                       causes=[causes.raised(exc, "building it")]) from exc
    triton_typing.follow_compiled_typing()  # interpreted Triton typed as compiled (no-op else)
    return loss_fn


def tensors(ctx: Context, feed: Feed) -> tuple[dict, torch.Tensor, torch.Tensor | None]:
    """(leaves by name, target, weight) as tensors in the case's dtype on its device; the
    leaves require a gradient when the feed takes one."""
    device, dtype = ctx.case.device, getattr(torch, ctx.case.dtype)
    leaves = {name: torch.tensor(feed.leaves[name], dtype=dtype, device=device,
                                 requires_grad=feed.grad)
              for name in feed.call.leaves if feed.leaves.get(name) is not None}
    target_dtype = dtype if ctx.case.targets == "probs" else torch.int64
    target = torch.tensor(feed.target, dtype=target_dtype, device=device)
    weight = None if feed.weight is None else torch.tensor(feed.weight, dtype=dtype, device=device)
    return leaves, target, weight


def call(ctx: Context, loss_fn: Callable, spec: CallSpec, leaves: dict, target):
    """Forward through the implementation with its positional arguments (spec.args), on
    copies of the leaves if the record writes into its inputs, the class scores as
    log-probabilities to a record that takes them and in the record's class layout."""
    args = []
    for name in spec.args:
        if name == "target":
            args.append(target)
            continue
        fed = leaves.get(name)
        if fed is not None and ctx.impl.mutates_input:
            fed = fed.clone()
        if fed is not None and name == spec.scores:
            if ctx.impl.input == "log_probs":
                fed = F.log_softmax(fed, dim=0 if fed.ndim == 1 else 1)
            fed = claims.to_impl_layout(ctx.impl, fed)
        args.append(fed)
    try:
        return loss_fn(*args)
    except Exception as exc:
        raise ctx.fail(f"calling it raised {type(exc).__name__}: {exc}",
                       causes=[causes.raised(exc, "calling it")]) from exc


def _check_output(ctx: Context, out, feed: Feed) -> list[str]:
    """Raise on output that cannot be compared; return the problems that still can be."""
    if not isinstance(out, torch.Tensor):
        raise ctx.fail(f"out={type(out).__name__} {out!r:.80}, but should be a torch.Tensor",
                       causes=[causes.part("not_a_tensor", "out", f"returned {type(out).__name__}")])
    if feed.expect_shape is not None and tuple(out.shape) != tuple(feed.expect_shape):
        raise ctx.fail(f"out.shape={tuple(out.shape)}, but should be {tuple(feed.expect_shape)}",
                       causes=[causes.wrong_shape("out", out.shape, feed.expect_shape)])
    if feed.grad and not out.requires_grad:
        raise ctx.fail("out.requires_grad=False: the loss does not depend on the logits",
                       causes=[causes.part("no_gradient", "out", "out.requires_grad=False")])
    notes = []
    claimed = claims.output_dtype(ctx.impl, ctx.case.dtype)
    if out.dtype != getattr(torch, claimed):
        like = "like the logits" if claimed == ctx.case.dtype else "as its record claims"
        notes.append(causes.Explained(
            f"out.dtype={out.dtype}, but should be torch.{claimed} {like}",
            [causes.part("wrong_dtype", "out", f"out.dtype={out.dtype}, expected torch.{claimed}",
                         actual=str(out.dtype), expected=f"torch.{claimed}")]))
    if out.device.type != ctx.case.device:
        notes.append(causes.Explained(
            f"out.device={out.device}, but should be on {ctx.case.device}",
            [causes.part("wrong_device", "out", f"out.device={out.device}, expected {ctx.case.device}")]))
    return notes


def _snapshot(now: dict) -> dict:
    """A copy and the version counter of every input, for _check_unchanged."""
    return {name: None if t is None else (t.clone(), t._version) for name, t in now.items()}


def _check_unchanged(ctx: Context, saved: dict, now: dict, when: str) -> None:
    """Values compared, and the version counter too: an in-place write that is undone before
    returning still moves `tensor._version`."""
    for name, before in saved.items():
        if before is None:
            continue
        copy, version = before
        if not torch.equal(copy, now[name]):
            raise ctx.fail(f"{name} changed in place during {when}: the implementation mutated its input",
                           causes=[causes.part("mutated_input", name, f"{name} changed during {when}")])
        if now[name]._version != version:
            raise ctx.fail(f"{name} was written in place during {when} (its version counter moved "
                           f"from {version} to {now[name]._version}), even if its values were restored: "
                           "the implementation mutated its input",
                           causes=[causes.part("mutated_input", name, f"{name} written during {when}")])


def run(ctx: Context, feed: Feed) -> Outcome:
    """`run_local` in the implementation's own process (ctx.pool, lsuite/running/worker.py), or in
    this one when the check runs in-process (--ls-inprocess, or a context without a pool)."""
    if ctx.pool is not None:
        return ctx.pool.call(ctx, run_local, feed)
    return run_local(ctx, feed)


def run_rank(ctx: Context, feed: Feed, rank: int, world: int, group=None) -> Outcome:
    """`run_local` on one rank of an initialised torch.distributed group
    (lsuite/running/distributed.py)."""
    return run_local(ctx, feed, shard=(rank, world, group))


def run_local(ctx: Context, feed: Feed, shard: tuple | None = None) -> Outcome:
    """Build, call, check the output and the inputs, backpropagate; see the module docstring.
    `shard` (rank, world, group): the call spec's shard leaf is cut to the rank's columns
    (the feed holds every column) and the record built for them."""
    spec = feed.call
    if shard is not None and spec.shard is not None:
        rank, world, group = shard
        lo, hi = shard_bounds(ctx.case.K, world)[rank]
        whole = np.asarray(feed.leaves[spec.shard])
        feed = dataclasses.replace(feed, leaves={**feed.leaves, spec.shard: np.ascontiguousarray(
            whole[:, lo:hi])})
        shard_kwargs = {"world": world, "rank": rank, "vocab_range": (lo, hi), "group": group}
    else:
        shard_kwargs = {}
    leaves, target, weight = tensors(ctx, feed)
    now = {**{n: t.detach() for n, t in leaves.items()}, "target": target, "weight": weight}
    saved = _snapshot(now)
    loss_fn = build(ctx, weight, spec, **shard_kwargs)
    fed = dict(leaves)
    if feed.non_contiguous:  # the same values, every other element of a wider tensor
        first = spec.leaves[0]
        fed[first] = torch.stack([leaves[first], leaves[first]], dim=-1)[..., 0]
    with torch.set_grad_enabled(feed.grad):
        out = call(ctx, loss_fn, spec, fed, target)
    notes = _check_output(ctx, out, feed)
    _check_unchanged(ctx, saved, now, "the forward pass")
    value = out.detach().double().cpu().numpy()
    out_dtype = str(out.dtype).removeprefix("torch.")
    if not feed.grad:
        return Outcome(value, None, tuple(notes), dtype=out_dtype)
    grads = _backward(ctx, out, feed, leaves, saved, now)
    return Outcome(value, grads.get("logits"), tuple(notes), grads, dtype=out_dtype)


def _backward(ctx: Context, out, feed: Feed, leaves: dict, saved: dict, now: dict) -> dict:
    """Backpropagate the cotangent; every leaf's gradient in float64 (a missing one fails)."""
    upstream = torch.ones_like(out) if feed.cotangent is None else torch.tensor(
        feed.cotangent, dtype=out.dtype, device=out.device)
    if feed.strided_upstream:  # the same values, every other element of a wider tensor
        upstream = torch.stack([upstream, torch.full_like(upstream, float("nan"))], dim=-1)[..., 0]
    try:
        out.backward(upstream)
    except Exception as exc:
        raise ctx.fail(f"backward raised {type(exc).__name__}: {exc}",
                       causes=[causes.raised(exc, "backward")]) from exc
    _check_unchanged(ctx, saved, now, "the backward pass")
    grads = {}
    for name, leaf in leaves.items():
        if leaf.grad is None:
            raise ctx.fail(f"{name}.grad is None after backward: no gradient reaches the {name}",
                           causes=[causes.part("no_gradient", name, f"{name}.grad is None")])
        grads[name] = leaf.grad.double().cpu().numpy()
    return grads
