"""Fixed-case arrangements where real kernels break (issue 24), applied by lsuite/inputs/cases.py:

- `block`: the class dimension crosses a kernel's block size B (4096, 16384, 32768, 65536)
  with a partial last block (B < K < 2B); every row's target and its largest logit lie in
  that tail block, and class weights differ between blocks (verl #5349: tail blocks);
- `spread="uneven"`: thousands of rows, more than one program or chunk handles, with the
  ignored rows bunched unevenly (bands of rows mostly ignored, none ignored, a quarter
  ignored), so per-row state carried between the rows one program handles shows
  (torchtune #1875: chunked means);
- `upstream`: the upstream gradient of a reduced loss is a number other than 1 ("scaled",
  Liger-Kernel #1298, TransformerEngine #2139), and that of reduction='none' reaches the
  backward as a non-contiguous tensor ("strided", TransformerEngine #2734: row strides).
"""

from __future__ import annotations

import numpy as np

BLOCKS = (4096, 16384, 32768, 65536)  # block sizes of the class dimension in real kernels
UPSTREAMS = ("default", "scaled", "strided")
SPREADS = ("even", "uneven")
UNEVEN_BAND = 512  # rows per band of the uneven spread
UNEVEN_SHARES = (0.9, 0.0, 0.25)  # the ignored share of successive bands, repeating


def tail_start(K: int, block: int) -> int:
    """The first class of the last, partial block."""
    return (K // block) * block


def tail_targets(K: int, block: int, shape, rng) -> np.ndarray:
    """Class targets drawn from the tail block only."""
    return rng.integers(tail_start(K, block), K, size=shape)


def max_in_tail(rows: np.ndarray, block: int, rng) -> np.ndarray:
    """Rows-last logits whose largest entry (by a margin of 1) lies in the tail block."""
    K = rows.shape[-1]
    where = rng.integers(tail_start(K, block), K, size=rows.shape[:-1])
    top = np.max(rows, axis=-1) + 1.0
    out = rows.copy()
    np.put_along_axis(out, where[..., None], top[..., None], axis=-1)
    return out


def blockwise_weight(weight: np.ndarray, block: int) -> np.ndarray:
    """Class weights that differ between blocks: block b's weights times (1 + b)."""
    return weight * (1.0 + np.arange(weight.size) // block)


def uneven_hits(shape, rng) -> np.ndarray:
    """Which rows are ignored: bands of UNEVEN_BAND rows with the shares of UNEVEN_SHARES."""
    rows = np.arange(int(np.prod(shape))).reshape(shape)
    share = np.asarray(UNEVEN_SHARES)[(rows // UNEVEN_BAND) % len(UNEVEN_SHARES)]
    return rng.random(shape) < share


def scalar_upstream(rng) -> float:
    """An upstream gradient for a reduced loss: a magnitude in [0.3, 3] of either sign."""
    return float(rng.choice((-1.0, 1.0)) * rng.uniform(0.3, 3.0))


def why_not(case) -> str | None:
    """Why a case's arrangement does not fit (None: it does)."""
    if case.upstream == "scaled" and case.reduction == "none":
        return "a scalar upstream gradient needs a reduced loss"
    if case.upstream == "strided" and case.reduction != "none":
        return "a strided upstream gradient needs reduction 'none'"
    if case.block and not case.block < case.K < 2 * case.block:
        return f"K = {case.K} does not end in a partial second block of {case.block}"
    if case.block and case.layout != "2d":
        return "tail blocks are arranged for 2-D inputs"
    return None
