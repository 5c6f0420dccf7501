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
class Feed:
    """What one call receives, as float64/int64 NumPy arrays (rounded to the case dtype)."""

    logits: np.ndarray  # classes on dim 1 (dim 0 unbatched)
    target: np.ndarray  # int class indices, or probabilities when case.targets == "probs"
    weight: np.ndarray | None = None  # (K,) class weights; None: not passed
    cotangent: np.ndarray | None = None  # upstream gradient; None: ones like the output
    grad: bool = True  # False: call under torch.no_grad and take no gradient
    non_contiguous: bool = False  # feed a strided view of the logits
    expect_shape: tuple[int, ...] | None = None  # the output's shape; None: not checked
    strided_upstream: bool = False  # backpropagate the cotangent as a non-contiguous tensor
    # hidden_states records: h (N, H), W (K, H), b (K,) or None; `logits` is then unused (None)
    hidden: np.ndarray | None = None
    classifier: np.ndarray | None = None
    bias: np.ndarray | None = None


@dataclass(frozen=True)
class Outcome:
    value: np.ndarray  # the output in float64
    grad: np.ndarray | None  # d(Σ cotangent · out)/d logits in float64; None without grad
    notes: tuple[str, ...]  # problems that still allow comparison (output dtype, device),
    # each a causes.Explained carrying its cause
    # every gradient by the name of its input: "logits" (vocab_parallel: this rank's columns),
    # or "hidden", "classifier", "bias" for hidden_states; empty without grad
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    dtype: str | None = None  # the output's dtype ("float32", ...); None: not recorded


def tensors(ctx: Context, feed: Feed):
    """(logits leaf, target, weight) as tensors in the case's dtype on its device."""
    device, dtype = ctx.case.device, getattr(torch, ctx.case.dtype)
    logits = torch.tensor(feed.logits, dtype=dtype, device=device, requires_grad=feed.grad)
    target_dtype = dtype if ctx.case.targets == "probs" else torch.int64
    target = torch.tensor(feed.target, dtype=target_dtype, device=device)
    weight = None if feed.weight is None else torch.tensor(feed.weight, dtype=dtype, device=device)
    return logits, target, weight


def build(ctx: Context, weight, **shard) -> Callable:
    """The implementation's loss function for ctx.case, built by its record (`shard`: a
    vocab-parallel rank's world, rank, vocab_range and group)."""
    case = ctx.case
    cfg = BuildConfig(eps=case.eps, reduction=case.reduction, num_classes=case.K,
                      device=case.device, dtype=getattr(torch, case.dtype), weight=weight,
                      ignore_index=case.passed_ignore_index,
                      hidden_size=case.H if ctx.impl.input == "hidden_states" else 0, **shard)
    try:
        loss_fn = ctx.impl.build(cfg)
    except Exception as exc:  # the implementation's own failure, reported as such
        raise ctx.fail(f"building it raised {type(exc).__name__}: {exc}",
                       causes=[causes.raised(exc, "building it")]) from exc
    triton_typing.follow_compiled_typing()  # interpreted Triton typed as compiled (no-op else)
    return loss_fn


def call(ctx: Context, loss_fn: Callable, logits, target):
    """Forward through the implementation, feeding log-probabilities if it takes them."""
    fed = logits.clone() if ctx.impl.mutates_input else logits
    if ctx.impl.input == "log_probs":
        fed = F.log_softmax(fed, dim=0 if fed.ndim == 1 else 1)
    fed = claims.to_impl_layout(ctx.impl, fed)
    try:
        return loss_fn(fed, target)
    except Exception as exc:
        raise ctx.fail(f"calling it raised {type(exc).__name__}: {exc}",
                       causes=[causes.raised(exc, "calling it")]) from exc


def call_linear(ctx: Context, loss_fn: Callable, hidden, classifier, target, bias):
    """Forward through a hidden-states record: loss_fn(hidden, classifier, target, bias), on
    copies of the tensors if the record says it writes into its inputs (as `call`)."""
    if ctx.impl.mutates_input:
        hidden, classifier = hidden.clone(), classifier.clone()
        bias = None if bias is None else bias.clone()
    try:
        return loss_fn(hidden, classifier, target, bias)
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


def run_local(ctx: Context, feed: Feed) -> Outcome:
    """Build, call, check the output and the inputs, backpropagate; see the module docstring."""
    if ctx.impl.input == "hidden_states":
        return _run_linear(ctx, feed)
    leaf, target, weight = tensors(ctx, feed)
    now = {"logits": leaf.detach(), "target": target, "weight": weight}
    saved = _snapshot(now)
    loss_fn = build(ctx, weight)
    fed = torch.stack([leaf, leaf], dim=-1)[..., 0] if feed.non_contiguous else leaf
    with torch.set_grad_enabled(feed.grad):
        out = call(ctx, loss_fn, fed, target)
    notes = _check_output(ctx, out, feed)
    _check_unchanged(ctx, saved, now, "the forward pass")
    value = out.detach().double().cpu().numpy()
    out_dtype = str(out.dtype).removeprefix("torch.")
    if not feed.grad:
        return Outcome(value, None, tuple(notes), dtype=out_dtype)
    grads = _backward(ctx, out, feed, {"logits": leaf}, saved, now)
    return Outcome(value, grads["logits"], tuple(notes), grads, dtype=out_dtype)


def _leaf(ctx: Context, array, grad: bool):
    if array is None:
        return None
    return torch.tensor(array, dtype=getattr(torch, ctx.case.dtype), device=ctx.case.device,
                        requires_grad=grad)


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


def _run_linear(ctx: Context, feed: Feed) -> Outcome:
    """A hidden-states record: loss_fn(hidden, classifier, target, bias) on h (N, H), W (K, H),
    b (K,) or None; gradients for each of them."""
    leaves = {name: _leaf(ctx, array, feed.grad) for name, array in
              (("hidden", feed.hidden), ("classifier", feed.classifier), ("bias", feed.bias))}
    leaves = {name: leaf for name, leaf in leaves.items() if leaf is not None}
    target = torch.tensor(feed.target, dtype=torch.int64, device=ctx.case.device)
    weight = _leaf(ctx, feed.weight, False)
    now = {**{n: t.detach() for n, t in leaves.items()}, "target": target, "weight": weight}
    saved = _snapshot(now)
    loss_fn = build(ctx, weight)
    with torch.set_grad_enabled(feed.grad):
        out = call_linear(ctx, loss_fn, leaves["hidden"], leaves["classifier"], target, leaves.get("bias"))
    notes = _check_output(ctx, out, feed)
    _check_unchanged(ctx, saved, now, "the forward pass")
    value = out.detach().double().cpu().numpy()
    if not feed.grad:
        return Outcome(value, None, tuple(notes))
    return Outcome(value, None, tuple(notes), _backward(ctx, out, feed, leaves, saved, now))


def run_shard(ctx: Context, feed: Feed, rank: int, world: int, group=None) -> Outcome:
    """A vocab-parallel record on one rank of an initialised torch.distributed group: it is
    built with the rank's columns and called on them (feed.logits holds every column, the
    rank's shard is cut here); the gradient is that of the rank's columns."""
    lo, hi = shard_bounds(ctx.case.K, world)[rank]
    local = _leaf(ctx, np.ascontiguousarray(feed.logits[:, lo:hi]), feed.grad)
    target = torch.tensor(feed.target, dtype=torch.int64, device=ctx.case.device)
    weight = _leaf(ctx, feed.weight, False)
    now = {"logits": local.detach(), "target": target, "weight": weight}
    saved = _snapshot(now)
    loss_fn = build(ctx, weight, world=world, rank=rank, vocab_range=(lo, hi), group=group)
    with torch.set_grad_enabled(feed.grad):
        out = call(ctx, loss_fn, local, target)
    notes = _check_output(ctx, out, feed)
    _check_unchanged(ctx, saved, now, "the forward pass")
    value = out.detach().double().cpu().numpy()
    if not feed.grad:
        return Outcome(value, None, tuple(notes))
    grads = _backward(ctx, out, feed, {"logits": local}, saved, now)
    return Outcome(value, grads["logits"], tuple(notes), grads)
