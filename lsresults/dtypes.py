"""Floating-point facts per dtype name, shared by the budgets (lsuite/judging/tolerances.py)
and the report (the accuracy table's and the drift rule's rounding floor)."""

from __future__ import annotations

# Unit roundoff u = 2**-p per dtype (p: significand bits, the implicit one included): half
# the spacing of numbers in [1, 2), relative; half the machine epsilon.
UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "bfloat16": 2.0 ** -8,
                 "float16": 2.0 ** -11}

__all__ = ["UNIT_ROUNDOFF"]
