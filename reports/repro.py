"""A self-contained repro script for a finding: what a user pastes into an issue of the
library under test. It loads the implementation by its SPEC (the catalog's by name), makes
the check's inputs (seeded, as the suite made them), builds and calls it as the runner
does, and prints its value and gradient beside the float64 reference's.

Plain text from results.json's data (the check's case parameters, the record's origin and
input, the run's seed): no lsuite import here, the script imports it when run.
"""

from __future__ import annotations

from .analysis import params_of, text

INPUTS = ("logits", "log_probs")  # record inputs the script knows how to call


def _load(impl: dict) -> str:
    origin, name = text(impl.get("origin")), text(impl.get("name"))
    if origin in ("", "builtin"):
        return (f"from lsuite import catalog, peers\n"
                f"impl = {{**catalog.by_name(), **peers.by_name()}}[{name!r}]  # a catalog record")
    return f"from lsuite.catalogs.loading import load\nimpl = load({origin!r})  # the implementation, by its SPEC"


def script(check: dict, impl: dict, seed, summary: str = "") -> str | None:
    """The script for one check, or None for a record input it does not cover (hidden
    states, vocab-parallel shards: their pytest repro line reruns them)."""
    if text(impl.get("input") or "logits") not in INPUTS or int(params_of(check).get("world") or 1) != 1:
        return None
    params = {k: v for k, v in params_of(check).items()}
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    header = f"# {text(check.get('impl'))}: {summary}" if summary else f"# {text(check.get('impl'))}"
    return f'''{header}
# check {text(check.get("check"))}; needs the suite importable (pip install it, or run in its checkout)
import numpy as np
import torch
import torch.nn.functional as F

import reference
from lsuite.record import claims
from lsuite.inputs.cases import Case, make_inputs
from lsuite.record.records import BuildConfig
{_load(impl)}

case = Case(**{params!r})
inputs = make_inputs(impl, case, {seed!r})  # the check's inputs, as the suite made them
dtype = getattr(torch, case.dtype)
weight = None if inputs.weight is None else torch.tensor(inputs.weight, dtype=dtype)
loss_fn = impl.build(BuildConfig(eps=case.eps, reduction=case.reduction, num_classes=case.K,
                                 device=case.device, dtype=dtype, weight=weight,
                                 ignore_index=case.passed_ignore_index))
logits = torch.tensor(inputs.logits, dtype=dtype, device=case.device, requires_grad=True)
target = torch.tensor(inputs.target, dtype=dtype if case.targets == "probs" else torch.int64,
                      device=case.device)
fed = F.log_softmax(logits, dim=0 if logits.ndim == 1 else 1) if impl.input == "log_probs" else logits
out = loss_fn(claims.to_impl_layout(impl, fed), target)  # the call
out.backward(torch.ones_like(out) if inputs.cotangent is None
             else torch.tensor(inputs.cotangent, dtype=out.dtype, device=out.device))

ref = reference.loss_and_grad(inputs.logits, inputs.target, inputs.spec, weight=inputs.weight,
                              cotangent=inputs.cotangent)
expected = claims.expected_value(impl, case.reduction, inputs, ref.value)
np.set_printoptions(precision=8, threshold=12)
print("value     theirs:", out.detach().double().cpu().numpy(), " shape", tuple(out.shape))
print("value  reference:", np.asarray(expected), " shape", np.shape(expected))
grad = logits.grad.double().cpu().numpy()
if grad.shape == np.shape(ref.grad):
    print("grad max abs difference:", np.nanmax(np.abs(grad - ref.grad)))
'''
