"""Run one implementation on one case and judge it against the reference.

Everything an implementation can do wrong (raise, return a non-tensor, the wrong shape,
dtype or device, NaN, no gradient, mutate its inputs, be inaccurate) becomes a
`CheckFailed` with a message that says what was computed, what was expected, the budget
and a repro; the measured errors are handed to `record` before anything is raised, so a
failed check still reports its numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import reference

from . import tolerances
from .baseline import pytorch_error
from .cases import Case, Inputs, make_inputs
from .records import BuildConfig, Impl


class CheckFailed(AssertionError):
    """A failed check: the implementation misbehaved or disagreed with the reference."""


@dataclass(frozen=True)
class Context:
    impl: Impl
    case: Case
    seed: int = 0
    repro: str = ""  # appended to every failure message
    record: Callable[[dict], None] = lambda metrics: None  # receives the measured metrics

    def fail(self, what: str) -> CheckFailed:
        claim = f"[{self.impl.name}: {self.impl.convention} {self.impl.form}, {_case_text(self.case)}]"
        tail = f"\nrepro: {self.repro}" if self.repro else ""
        return CheckFailed(f"{what} {claim}{tail}")


def _case_text(case: Case) -> str:
    return (f"{case.device} {case.dtype} reduction={case.reduction} eps={case.eps} K={case.K} "
            f"layout={case.layout} ignore={case.ignore} weight={case.weight} targets={case.targets}")


def tensors(ctx: Context, inputs: Inputs):
    """(logits leaf, target, weight) as torch tensors on the case device."""
    device, dtype = ctx.case.device, getattr(torch, ctx.case.dtype)
    logits = torch.tensor(inputs.logits, dtype=dtype, device=device, requires_grad=True)
    if ctx.case.targets == "probs":
        target = torch.tensor(inputs.target, dtype=dtype, device=device)
    else:
        target = torch.tensor(inputs.target, dtype=torch.int64, device=device)
    weight = None if inputs.weight is None else torch.tensor(inputs.weight, dtype=dtype, device=device)
    return logits, target, weight


def build(ctx: Context, weight) -> Callable:
    case = ctx.case
    cfg = BuildConfig(eps=case.eps, reduction=case.reduction, num_classes=case.K,
                      device=case.device, dtype=getattr(torch, case.dtype), weight=weight,
                      ignore_index=case.passed_ignore_index)
    try:
        return ctx.impl.build(cfg)
    except Exception as exc:  # the implementation's own failure, reported as such
        raise ctx.fail(f"building it raised {type(exc).__name__}: {exc}") from exc


def call(ctx: Context, loss_fn: Callable, logits, target):
    """Forward through the implementation, feeding log-probabilities if it takes them."""
    fed = logits.clone() if ctx.impl.mutates_input else logits
    if ctx.impl.input == "log_probs":
        fed = F.log_softmax(fed, dim=0 if fed.ndim == 1 else 1)
    try:
        return loss_fn(fed, target)
    except Exception as exc:
        raise ctx.fail(f"calling it raised {type(exc).__name__}: {exc}") from exc


def expected_shape(ctx: Context, inputs: Inputs) -> tuple[int, ...]:
    if ctx.case.reduction != "none":
        return ()
    return tuple(inputs.cotangent.shape)


def check_output(ctx: Context, out, inputs: Inputs) -> list[str]:
    """Raise on output that cannot be compared; return the problems that still can be."""
    if not isinstance(out, torch.Tensor):
        raise ctx.fail(f"out={type(out).__name__} {out!r:.80}, but should be a torch.Tensor")
    want = expected_shape(ctx, inputs)
    if tuple(out.shape) != want:
        raise ctx.fail(f"out.shape={tuple(out.shape)}, but should be {want}")
    if not out.requires_grad:
        raise ctx.fail("out.requires_grad=False: the loss does not depend on the logits")
    problems = []
    if out.dtype != getattr(torch, ctx.case.dtype):
        problems.append(f"out.dtype={out.dtype}, but should be torch.{ctx.case.dtype} like the logits")
    if out.device.type != ctx.case.device:
        problems.append(f"out.device={out.device}, but should be on {ctx.case.device}")
    return problems


def check_unchanged(ctx: Context, before: dict, now: dict, when: str) -> None:
    for name, saved in before.items():
        if saved is not None and not torch.equal(saved, now[name]):
            raise ctx.fail(f"{name} changed in place during {when}: the implementation mutated its input")


def compare(ctx: Context, what: str, actual: np.ndarray, expected: np.ndarray,
            baseline: float | None) -> dict:
    """Errors of one tensor and its budget; raises after the caller recorded metrics."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    # A true value beyond the dtype's range is +-inf once rounded: that is the right answer.
    top = torch.finfo(getattr(torch, ctx.case.dtype)).max
    with np.errstate(invalid="ignore"):
        expected = np.where(np.abs(expected) > top, np.copysign(np.inf, expected), expected)
    bad_pattern = np.isnan(actual) != np.isnan(expected)
    both = np.isfinite(actual) & np.isfinite(expected)
    inf_mismatch = (~np.isnan(expected) & ~both) & (actual != expected)
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf: masked by `both`
        diff = np.where(both, np.abs(actual - expected), 0.0)
    scale = float(np.max(np.abs(expected[both]))) if both.any() else 0.0
    abs_err = float(diff.max()) if diff.size else 0.0
    limit = tolerances.budget(ctx.case.dtype, scale, baseline)
    result = {
        "abs": abs_err, "rel": abs_err / scale if scale > 0 else (0.0 if abs_err == 0 else float("inf")),
        "budget": limit.allowed, "baseline": baseline, "problem": None,
    }
    if bad_pattern.any() or inf_mismatch.any():
        where = tuple(int(i) for i in np.argwhere(bad_pattern | inf_mismatch)[0]) if actual.ndim else ()
        result["problem"] = (f"{what}{list(where) if where else ''}={float(actual[where])!r}, "
                             f"but should be {float(expected[where])!r} (NaN/inf where the reference has none, or the reverse)")
    elif abs_err > limit.allowed:
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.ndim else ()
        at = f" at {list(where)}" if where else ""
        result["problem"] = (
            f"{what}: max abs error {abs_err:.3g}{at} exceeds the budget {limit.allowed:.3g} "
            f"(floor {limit.floor:.3g}, PyTorch's own error x factor {limit.baseline if limit.baseline is not None else 'n/a'}); "
            f"out={float(actual[where])!r}, but should be {float(expected[where])!r}")
    return result


def check_against_reference(ctx: Context) -> dict:
    """The conformance check: value and gradient of the implementation vs the reference."""
    inputs = make_inputs(ctx.impl, ctx.case, ctx.seed)
    ref = reference.loss_and_grad(inputs.logits, inputs.target, inputs.spec,
                                  weight=inputs.weight, cotangent=inputs.cotangent)
    logits, target, weight = tensors(ctx, inputs)
    before = {"logits": logits.detach().clone(), "target": target.clone(),
              "weight": None if weight is None else weight.clone()}
    loss_fn = build(ctx, weight)
    out = call(ctx, loss_fn, logits, target)
    problems = check_output(ctx, out, inputs)
    now = {"logits": logits.detach(), "target": target, "weight": weight}
    check_unchanged(ctx, before, now, "the forward pass")
    upstream = None if inputs.cotangent is None else torch.tensor(
        inputs.cotangent, dtype=out.dtype, device=out.device)
    try:
        out.backward(upstream)
    except Exception as exc:
        raise ctx.fail(f"backward raised {type(exc).__name__}: {exc}") from exc
    check_unchanged(ctx, before, now, "the backward pass")
    if logits.grad is None:
        raise ctx.fail("logits.grad is None after backward: no gradient reaches the logits")
    value = out.detach().double().cpu().numpy()
    grad = logits.grad.double().cpu().numpy()
    base_value = base_grad = None
    if ctx.case.dtype != "float64":
        base_value, base_grad = pytorch_error(inputs, ctx.case.dtype, ref.value, ref.grad)
    v = compare(ctx, "value", value, np.asarray(ref.value), base_value)
    g = compare(ctx, "grad", grad, ref.grad, base_grad)
    metrics = {
        "value_max_abs_err": v["abs"], "value_max_rel_err": v["rel"],
        "grad_max_abs_err": g["abs"], "grad_max_rel_err": g["rel"],
        "value_budget": v["budget"], "grad_budget": g["budget"],
        "baseline_value_abs_err": base_value, "baseline_grad_abs_err": base_grad,
    }
    ctx.record(metrics)
    problems += [r["problem"] for r in (v, g) if r["problem"]]
    if problems:
        raise ctx.fail("; ".join(problems))
    return metrics
