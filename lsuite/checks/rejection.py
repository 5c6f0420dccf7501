"""The argument checks: an implementation that claims PyTorch's argument checking must
reject what nn.CrossEntropyLoss rejects (a smoothing outside [0, 1], a class target outside
[0, K)). The implementation is built and called by the suite's runner (lsuite/running/runner.py);
on CUDA the attempt runs in a fresh interpreter (lsuite/checks/isolate.py), since a device-side
assert poisons the process that trips it."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from lsuite.inputs.cases import Case
from lsuite.judging.severity import CheckDiverged
from lsuite.kinds import kind_of
from lsuite.running.runner import CheckFailed, Context, build, call, tensors

ISOLATED_TIMEOUT_S = 120  # a fresh interpreter importing torch and initialising CUDA
# What counts as a rejection: the exception types nn.CrossEntropyLoss raises for these
# arguments (ValueError for label_smoothing, IndexError/RuntimeError for targets on CPU,
# RuntimeError for a device-side assert). Anything else (a RecursionError, a TypeError from
# a bug) is not a rejection; a record that rejects otherwise names its types in
# `Impl.rejects_with`.
REJECTIONS = (RuntimeError, IndexError, ValueError)
# Subclasses of RuntimeError that say the code broke, not that it refused the argument.
NOT_REJECTIONS = (RecursionError, NotImplementedError)


def bad_target_value(case: Case, which: str) -> int:
    return case.K if which == "K" else int(which)


def attempt(ctx: Context, *, eps: float | None = None, target: str | None = None) -> str | None:
    """`attempt_local` in the implementation's worker process when the check has one."""
    if ctx.pool is not None:
        return ctx.pool.call(ctx, attempt_local, eps, target)
    return attempt_local(ctx, eps, target)


def attempt_local(ctx: Context, eps: float | None = None, target: str | None = None) -> str | None:
    """Run the implementation with one bad argument: None if it rejected it with one of the
    accepted exception types, else what it did ("returned ...", "raised ...")."""
    case = ctx.case if eps is None else ctx.case.replace(eps=eps)
    kind = kind_of(ctx.impl)
    inputs = kind.make_inputs(ctx.impl, ctx.case, ctx.seed)
    leaves, good_target, weight = tensors(ctx, kind.feed(inputs, cotangent=None))
    if target is not None:
        good_target = good_target.clone()
        good_target.view(-1)[0] = bad_target_value(case, target)
    bad_ctx = Context(impl=ctx.impl, case=case, seed=ctx.seed)
    # A bad target must be rejected by the call; a bad eps by the constructor or the call.
    # A constructor that raises on good arguments is the implementation's failure, never a
    # rejection of the bad target.
    loss_fn = build(bad_ctx, weight, kind.call) if target is not None else None
    try:
        out = call(bad_ctx, loss_fn or build(bad_ctx, weight, kind.call), kind.call, leaves, good_target)
        if isinstance(out, torch.Tensor) and out.device.type == "cuda":
            torch.cuda.synchronize()  # a device-side assert surfaces here
    except Exception as exc:  # noqa: BLE001 - judged by its type just below
        raised = exc.__cause__ if isinstance(exc, CheckFailed) and exc.__cause__ else exc
        accepted = REJECTIONS + tuple(ctx.impl.rejects_with)
        broke = isinstance(raised, NOT_REJECTIONS) and not isinstance(raised, tuple(ctx.impl.rejects_with))
        if isinstance(raised, accepted) and not broke:
            return None
        return (f"raised {type(raised).__name__}: {str(raised)[:200]} (a rejection is one of "
                f"{', '.join(t.__name__ for t in accepted)})")
    return "returned " + repr(out.detach().cpu() if isinstance(out, torch.Tensor) else out)


def attempt_isolated(ctx: Context, target: str) -> str | None:
    """`attempt` in a fresh interpreter: a CUDA device-side assert poisons its process."""
    request = {"impl": ctx.impl.name if ctx.impl.origin == "builtin" else ctx.impl.origin,
               "case": ctx.case.params(), "seed": ctx.seed, "target": target}
    proc = subprocess.run([sys.executable, "-m", "lsuite.checks.isolate", json.dumps(request)],
                          capture_output=True, text=True, timeout=ISOLATED_TIMEOUT_S)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return None  # the process died on the bad target: rejected, if rudely
    return json.loads(lines[-1])["returned"]


def torch_accepts(eps: float) -> bool:
    """Does nn.CrossEntropyLoss itself accept this label_smoothing? (Run here, in the judge:
    it is PyTorch's code, not the implementation's.)"""
    try:
        torch.nn.CrossEntropyLoss(label_smoothing=eps)(torch.zeros(2, 3), torch.tensor([0, 1]))
    except (RuntimeError, ValueError):
        return False
    return True


def expect_rejection(ctx: Context, *, eps: float | None = None, target: str | None = None) -> None:
    if target is not None and ctx.case.device == "cuda":
        returned = attempt_isolated(ctx, target)
    else:
        returned = attempt(ctx, eps=eps, target=target)
    if returned is None:
        return
    what = (f"label_smoothing={eps}" if eps is not None
            else f"a target of {bad_target_value(ctx.case, target)} with K={ctx.case.K}")
    message = f"given {what} it {returned}, but should raise as nn.CrossEntropyLoss does"
    if eps is not None and returned.startswith("returned") and torch_accepts(eps):
        raise ctx.fail(f"{message} (a divergence: nn.CrossEntropyLoss in torch "
                       f"{torch.__version__} accepts it too)", kind=CheckDiverged)
    raise ctx.fail(message)
