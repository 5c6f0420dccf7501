"""Predicates on a Case that describe themselves: where a known defect shows.

    from lsuite.inputs.predicates import when
    KnownDefect("...", when=when.dtype.isin(("bfloat16", "float16")) & (when.K > 2))

Each predicate is callable on a Case and prints as the condition it tests
("dtype in ('bfloat16', 'float16') and K > 2"), so the words in --ls-list, results.json and
the report are generated from the very predicate that decides: they cannot
drift apart. Field names are checked against Case when the predicate is written.
"""

from __future__ import annotations

import dataclasses
import operator

from lsuite.inputs.cases import Case
from lsuite.record.predicate import Predicate


class _Field:
    """One field of a Case, compared with a constant."""

    __hash__ = None  # == builds a Predicate

    def __init__(self, name: str):
        self.name = name

    def _compare(self, symbol: str, op, value) -> Predicate:
        name = self.name
        return Predicate(lambda c: op(getattr(c, name), value), f"{name} {symbol} {value!r}")

    def __eq__(self, value) -> Predicate:  # type: ignore[override]
        return self._compare("==", operator.eq, value)

    def __ne__(self, value) -> Predicate:  # type: ignore[override]
        return self._compare("!=", operator.ne, value)

    def __lt__(self, value) -> Predicate:
        return self._compare("<", operator.lt, value)

    def __le__(self, value) -> Predicate:
        return self._compare("<=", operator.le, value)

    def __gt__(self, value) -> Predicate:
        return self._compare(">", operator.gt, value)

    def __ge__(self, value) -> Predicate:
        return self._compare(">=", operator.ge, value)

    def isin(self, values) -> Predicate:
        values, name = tuple(values), self.name
        return Predicate(lambda c: getattr(c, name) in values, f"{name} in {values!r}")


class _When:
    """Conditions on a case, for ``KnownDefect(when=...)``: ``when.<field>`` is a field of
    the case (device, dtype, reduction, eps, K, N, layout, ignore, weight, targets, logits,
    miss, H, bias, world), compared with a constant by ``==``, ``!=``, ``<``, ``<=``, ``>``,
    ``>=`` or ``.isin(values)``; the results combine with ``&``, ``|`` and ``~``, and print as
    the condition they test. A name that is not a field raises AttributeError at once::

        when.dtype.isin(("bfloat16", "float16")) & (when.K > 2)
    """

    def __getattr__(self, name: str) -> _Field:
        if name.startswith("_") or name not in {f.name for f in dataclasses.fields(Case)}:
            raise AttributeError(f"Case has no field {name!r}")
        return _Field(name)


when = _When()
ALWAYS = Predicate(lambda case: True, "always")
