"""A condition on a Case that prints as the condition it tests: the type of a known
defect's `when` (lsuite/record/records.py). The fields to build one from are in
lsuite/inputs/predicates.py (`when.<field>`), where the Case is known."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "atom": 4}


class Predicate:
    """A condition on a Case; combine with `&`, `|` and `~`."""

    def __init__(self, test: Callable[[Any], bool], text: str, op: str = "atom"):
        self._test, self.text, self.op = test, text, op

    def __call__(self, case) -> bool:
        return bool(self._test(case))

    def _inside(self, op: str) -> str:
        return f"({self.text})" if _PRECEDENCE[self.op] < _PRECEDENCE[op] else self.text

    def __and__(self, other: Predicate) -> Predicate:
        return Predicate(lambda c: self(c) and other(c),
                         f"{self._inside('and')} and {other._inside('and')}", "and")

    def __or__(self, other: Predicate) -> Predicate:
        return Predicate(lambda c: self(c) or other(c),
                         f"{self._inside('or')} or {other._inside('or')}", "or")

    def __invert__(self) -> Predicate:
        return Predicate(lambda c: not self(c), f"not {self._inside('not')}", "not")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Predicate({self.text!r})"
