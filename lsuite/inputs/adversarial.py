"""The one builder of adversarial logits: where label-smoothing bugs live (docs/specification.md §6-7).

A *logit kind* turns ordinary logits into the inputs that break careless kernels:

- `confident`: the true class at probability 1 - miss (log(softmax) underflows, a
  bf16-rounded softmax loses the whole true-class gradient);
- `extreme`: logits of magnitude up to about `EXTREME` (softmax without the max shift
  overflows; float16 holds 65504);
- `masked`: some non-target classes at -inf (0 * -inf = NaN in KL and BCE forms).

The fixed cases (lsuite/inputs/cases.py) call `adversarial_logits` with parameters drawn from
their seeded RNG; the Hypothesis strategies (lsuite/inputs/strategies.py) draw the same
parameters, so both speak one vocabulary.
"""

from __future__ import annotations

import numpy as np

LOGIT_KINDS = ("ordinary", "confident", "extreme", "masked")
CONFIDENT_MISSES = (0.1, 1e-3, 1e-6)  # 1 - p(true class) of a confident row
EXTREME = 1e4  # the magnitude of extreme logits: fp16 overflows at 65504, softmax in fp32 does not
MASKED_SHARE = 0.3  # the share of non-target classes a fixed masked case sets to -inf


def adversarial_logits(kind: str, rows: np.ndarray, is_target: np.ndarray, *,
                       miss: float = CONFIDENT_MISSES[-1], magnitude: float = EXTREME,
                       mask: np.ndarray | None = None) -> np.ndarray:
    """Logits of one kind, rows last: (R, K) float64 from (R, K) ordinary ones.

    kind: one of LOGIT_KINDS.
    rows: ordinary logits; for `extreme`, of unit scale (they are multiplied by `magnitude`).
    is_target: (R, K) bool, each row's target class (never masked; the confident class).
    miss: for `confident`, 1 - p(true class), in (0, 1).
    magnitude: for `extreme`, the scale of the logits.
    mask: for `masked`, (R, K) bool of classes to set to -inf (targets are left finite).
    """
    if kind not in LOGIT_KINDS:
        raise ValueError(f"logit kind {kind!r} is not one of {LOGIT_KINDS}")
    rows = np.asarray(rows, dtype=np.float64)
    if kind == "ordinary":
        return rows
    if kind == "extreme":
        return rows * magnitude
    if kind == "confident":
        if not 0.0 < miss < 1.0:
            raise ValueError(f"miss must be in (0, 1), got {miss!r}")
        others = np.where(is_target, -np.inf, rows)
        top = np.logaddexp.reduce(others, axis=-1) + np.log((1 - miss) / miss)
        return np.where(is_target, top[..., None], rows)
    if mask is None:
        raise ValueError("the masked kind needs a mask")
    return np.where(np.asarray(mask, bool) & ~is_target, -np.inf, rows)
