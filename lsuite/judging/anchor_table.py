"""The table behind the low-precision anchor (docs/tolerances.md), measured by the suite's
own pieces: `python -m lsuite.judging.anchor_table`.

For confident rows (every row at p(true class) = 1 - miss, K=1000, N=16, mean) in bfloat16
and float16: the relative error of the true-class gradient entry (max over rows, against
the float64 reference on the same rounded inputs) of PyTorch's own kernel on this device
(lsuite/judging/torch_error.py), of a kernel that computes in float32 and rounds once, and the
attainable bound the budgets are a multiple of (lsuite/judging/attainable.py).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

import reference
from lsuite.catalogs.catalog import by_name
from lsuite.inputs.cases import Case, make_inputs
from lsuite.judging.attainable import attainable, true_classes
from lsuite.judging.tolerances import ATTAINABLE_FACTOR
from lsuite.judging.torch_error import pytorch_outputs

MISSES = (1e-2, 1e-3, 1e-4, 1e-6)


def _float32_round_once(inputs, dtype: str) -> np.ndarray:
    """The careful kernel: float32 cross-entropy on the rounded logits, gradient rounded once."""
    z = torch.tensor(inputs.logits, dtype=torch.float32, requires_grad=True)
    eps = inputs.spec.eps
    F.cross_entropy(z, torch.tensor(inputs.target), label_smoothing=eps).backward()
    return z.grad.to(getattr(torch, dtype)).double().numpy()


def rows(eps: float = 0.0, dtypes=("bfloat16", "float16")):
    """(dtype, p, PyTorch, float32 rounded once, attainable) relative true-class errors."""
    impl = by_name()["seed000_ce"]
    for dtype in dtypes:
        for miss in MISSES:
            inputs = make_inputs(impl, Case(dtype=dtype, eps=eps, miss=miss, logits="confident", K=1000))
            ref = reference.loss_and_grad(inputs.logits, inputs.target, inputs.spec)
            r, c = true_classes(inputs, inputs.logits.shape[1])
            exact = ref.grad[r, c]

            def rel(grad, exact=exact, r=r, c=c):
                return float(np.max(np.abs(grad[r, c] - exact) / np.abs(exact)))

            torch_grad = pytorch_outputs(inputs, dtype)[1]
            bound = attainable(inputs, dtype, ref.value, ref.grad).grad
            yield dtype, 1 - miss, rel(torch_grad), rel(_float32_round_once(inputs, dtype)), \
                float(np.max(bound[r, c] / np.abs(exact)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, default=0.0)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__} CPU, K=1000, N=16, eps={args.eps:g}, mean; relative error of the "
          f"true-class gradient, max over rows (budget: {ATTAINABLE_FACTOR['bfloat16']:g} x attainable)")
    print("| dtype | p(true class) | PyTorch on this device | float32, rounded once | attainable |")
    print("|---|---|---|---|---|")
    for dtype, p, torch_err, once, bound in rows(args.eps):
        print(f"| {dtype} | {p:.6g} | {torch_err:.3g} | {once:.3g} | {bound:.3g} |")


if __name__ == "__main__":
    main()
